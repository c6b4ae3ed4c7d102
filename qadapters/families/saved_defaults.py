"""The defaults a saved adapter was built with, so that a later change of a default cannot change
(or break) an adapter on disk.

Note [saved defaults]
---------------------
A config stores the options as the user gave them (:class:`~qadapters.config.QAdapterConfig`);
the ones left out take the family's defaults when the adapters are built. If a default changes
between the save and the load — ``compound``'s ``blocks`` went from 3 to one block per 5 wires —
the loaded adapter would be built with other shapes (the load then fails) or other mathematics
(it would silently compute something else). So :func:`defaults_record` writes every family's
defaults into the weights file's metadata, and :func:`with_saved_defaults` gives a loaded config
back the saved default of every option it leaves out whose default has changed since. Files
written before the defaults were recorded carry no record; for them :data:`DEFAULTS_BEFORE_RECORD`
holds the defaults that have changed since then.

An option that has no effect given the others (:meth:`FamilyOptions.inert`) is left out: a
config refuses inert options that are set, and leaving it out changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

#: the defaults of files saved before :func:`defaults_record` existed, where they differ from
#: today's: family -> option -> default
DEFAULTS_BEFORE_RECORD: dict[str, dict[str, Any]] = {"compound": {"blocks": 3}}


def _normalised(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists)."""
    return json.loads(json.dumps(value))


def defaults_record() -> str:
    """Every family's option defaults as JSON: ``{family: {option: default}}``."""
    from qadapters.families import FAMILIES, family_options

    return json.dumps({family: family_options(family) for family in FAMILIES}, sort_keys=True)


def _filled(config: dict[str, Any], saved: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A config dict with the saved defaults that differ from today's put into its options."""
    from qadapters.families import FAMILIES, family_options, options_class

    family = config.get("family")
    if family == "weighted":
        components = [_filled(c, saved) for c in config.get("components", [])]
        return {**config, "components": components}
    if family not in FAMILIES or family not in saved:
        return config
    options = dict(config.get("options", {}))
    today = _normalised(family_options(family))
    changed = {
        name: value
        for name, value in saved[family].items()
        if name not in options and name in today and _normalised(value) != today[name]
    }
    if not changed:
        return config
    inert = options_class(family).from_mapping({**options, **changed}).inert()
    kept = {k: v for k, v in changed.items() if k not in inert}
    return {**config, "options": {**options, **kept}} if kept else config


def with_saved_defaults(config: dict[str, Any], record: str | None) -> dict[str, Any]:
    """The config dict ``config`` (``to_dict()`` of a config, weighted ones included) with the
    defaults of its save made explicit where today's differ (Note [saved defaults]).

    Args:
        config: the saved config as a dict.
        record: :func:`defaults_record` at the save; ``None`` for a file written before the
            records (:data:`DEFAULTS_BEFORE_RECORD`).

    Returns:
        ``config`` itself when nothing differs, else a new dict.

    Raises:
        ValueError: ``record`` is not the JSON of a ``{family: {option: default}}`` mapping.
    """
    saved = DEFAULTS_BEFORE_RECORD if record is None else json.loads(record)
    if not isinstance(saved, dict) or not all(isinstance(v, dict) for v in saved.values()):
        raise ValueError(
            f"expected saved defaults {{family: {{option: default}}}}; found {saved!r}"
        )
    return _filled(config, saved)
