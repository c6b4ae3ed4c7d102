import pytest

from backends import budget


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4096", 4096), ("512M", 512 * 1024**2), ("32g", 32 * 1024**3), ("1.5K", 1536),
     ("2GiB", 2 * 1024**3), ("8kb", 8192), (" 7 ", 7)],
)  # fmt: skip
def test_parse_bytes(text: str, expected: int) -> None:
    assert budget.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "G", "-1", "0", "abc", "nan", "inf", "1X"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a positive size in bytes"):
        budget.parse_bytes(text)


def test_budget_from_default_env_and_limit(monkeypatch) -> None:
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    assert budget.max_bytes() == budget.DEFAULT_MAX_BYTES
    monkeypatch.setenv(budget.ENV_VAR, "1M")
    assert budget.max_bytes() == 1024**2
    with budget.limit("2K"):
        assert budget.max_bytes() == 2048
        with budget.limit(10):
            assert budget.max_bytes() == 10
        assert budget.max_bytes() == 2048
    assert budget.max_bytes() == 1024**2
    monkeypatch.setenv(budget.ENV_VAR, "lots")
    with pytest.raises(ValueError, match="QADAPTERS_MAX_BYTES: expected a positive size"):
        budget.max_bytes()


def test_check_names_size_bytes_budget_and_the_way_out() -> None:
    with budget.limit(1024):
        budget.check("a small thing", 1024)
        with pytest.raises(MemoryError) as info:
            budget.check("a 20-qubit unitary", 2**40 * 16)
    msg = str(info.value)
    assert "a 20-qubit unitary needs 16.0 TiB, over the budget of 1.0 KiB" in msg
    assert "backends.budget.limit(...)" in msg and "QADAPTERS_MAX_BYTES" in msg


@pytest.mark.parametrize("bad", [0, -5, True])
def test_limit_refuses_non_positive(bad) -> None:
    with pytest.raises(ValueError, match="positive"), budget.limit(bad):
        pass


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (8 * 1024**2, "8.0 MiB"),
     (3 * 1024**5, "3.0 PiB"), (2.0**80, "1.2e+24 B")],
)  # fmt: skip
def test_format_bytes(nbytes: float, text: str) -> None:
    assert budget.format_bytes(nbytes) == text
