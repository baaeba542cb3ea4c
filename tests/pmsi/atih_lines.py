"""Hand-written ATIH RSA and ANO lines for tests, built from the shipped layout tables.

``Record(table, year)`` is a blank record of the layout (text fields spaces, integer fields zeros);
``set(name, value)`` places a value at a named field (text left-aligned and space-padded, integers
right-aligned and zero-padded). ``rsa_line`` adds the variable zones after the fixed part and sets
their counts; ``ano_line`` is one ANO record. Only the positions of ``respop.pmsi.layouts`` are
used; nothing of the reader's code.
"""

from __future__ import annotations

from pathlib import Path

from respop.pmsi import layouts


class Record:
    """One fixed-width record of ``table`` for layout ``year``."""

    def __init__(self, table: str, year: int, length: int | None = None) -> None:
        self.layout = layouts.layout(table, year)
        self.chars = [" "] * (length or self.layout.fixed_length)
        for f in self.layout.fields:
            if f.kind == "i":
                self.chars[f.start : f.end] = "0" * f.length

    def set(self, name: str, value: str | int) -> Record:
        f = self.layout.field(name)
        text = str(value)
        if len(text) > f.length:
            raise ValueError(f"{name}: {text!r} is longer than {f.length}")
        text = text.rjust(f.length, "0") if f.kind == "i" and isinstance(value, int) else text.ljust(f.length)
        self.chars[f.start : f.end] = text
        return self

    def text(self) -> str:
        return "".join(self.chars)


RSA_DEFAULTS = {
    "NOFINESS": "010000024",
    "CLE_RSA": "0000000001",
    "AGEAN": 67,
    "SEXE": "1",
    "CDGEO": "01001",
    "DP": "I500",
    "ECHPMSI": "8",
    "PROV": "5",
    "SCHPMSI": "8",
    "DUREE": 5,
    "RSACMD": "05",
    "RSATYPE": "M",
    "RSANUM": "09",
    "RSACOMPX": "T",
}


def unit_zone(year: int, **values: str | int) -> str:
    """One medical-unit zone (``rsa_um``): e.g. ``unit_zone(2023, NSEQRUM="01", DPUM="I500")``."""
    r = Record("rsa_um", year)
    for name, value in values.items():
        r.set(name, value)
    return r.text()


def act_zone(year: int, **values: str | int) -> str:
    """One procedure zone (``rsa_actes``): e.g. ``act_zone(2023, CDCCAM="DEQP003", NBEXEC=1)``."""
    r = Record("rsa_actes", year)
    for name, value in values.items():
        r.set(name, value)
    return r.text()


def rsa_line(
    year: int,
    *,
    aut: list[str] = (),
    rdth: list[str] = (),
    um: list[str] = (),
    das: list[str] = (),
    acte: list[str] = (),
    format_number: str | None = None,
    **values: str | int,
) -> str:
    """An RSA of layout ``year``: the fixed part (defaults of :data:`RSA_DEFAULTS`, overridden by
    ``values`` given by field name) then the zones, each zone given as its full text (a DAS code
    is padded to the zone's length); counts are set from the zones unless ``values`` sets them."""
    zones = {z.name: z for z in layouts.rsa_zones(year)}
    given = {"aut": list(aut), "rdth": list(rdth), "um": list(um), "das": list(das), "acte": list(acte)}
    r = Record("rsa", year)
    r.set("NOVRSA", format_number or layouts.format_number("rsa", year))
    for name, value in {**RSA_DEFAULTS, **values}.items():
        r.set(name, value)
    variable = ""
    for name, zone in zones.items():
        texts = given[name]
        if zone.count_field not in values:
            r.set(zone.count_field, len(texts))
        for t in texts:
            if len(t) > zone.length:
                raise ValueError(f"{name} zone longer than {zone.length}")
            variable += t.ljust(zone.length)
    return r.text() + variable


ANO_DEFAULTS = {
    "NOFINESS": "010000024",
    "CLE_RSA": "0000000001",
    "NOANON": "PATIENT0000000001",
    "DTENT": "01032023",
    "DTSORT": "06032023",
    **{code: "0" for code in ("CRSECU", "CRDNAI", "CRSEXE", "CRNODA", "CRFUSHOSP", "CRFUSPMSI", "CRDTENT")},
}


def ano_line(year: int, *, format_number: str | None = None, **values: str | int) -> str:
    """An ANO line of layout ``year`` (defaults of :data:`ANO_DEFAULTS`, dates moved to ``year``)."""
    r = Record("rsa_ano", year)
    r.set("NOFORMAT", format_number or layouts.format_number("rsa_ano", year))
    defaults = dict(ANO_DEFAULTS, DTENT=f"0103{year}", DTSORT=f"0603{year}")
    for name, value in {**defaults, **values}.items():
        r.set(name, value)
    return r.text()


def write(folder: Path, finess: str, year: int, month: int, rsa: list[str], ano: list[str], suffix: str = "") -> tuple[Path, Path]:
    """Write ``<finess>.<year>.<month>.rsa`` and ``.ano`` (one line each, ``\\n`` ended)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, lines in (("rsa", rsa), ("ano", ano)):
        path = folder / f"{finess}.{year}.{month}.{kind}{suffix}"
        path.write_text("".join(line + "\n" for line in lines), encoding="ascii")
        paths.append(path)
    return paths[0], paths[1]
