"""``phonon-ml materials``: the built-in materials and the instruments, with their sources and defaults."""
from __future__ import annotations

import argparse

from phonon_ml_core.data.jsonio import dumps

#: Temperature (K) at which the listing quotes the lattice parameter.
ROOM_TEMPERATURE_K = 293.0


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("materials", help="list the built-in materials and the instruments",
                       description="The built-in materials (lattice, a(293 K), two-shell reference constants and "
                                   "their sources) and the direct-geometry instruments with their default chopper "
                                   "package, frequency, Ei and detector 2θ range (docs/materials.md).")
    p.add_argument("material", nargs="?", default=None,
                   help="show one material in full (element symbol or material file)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def material_rows() -> list[dict]:
    """One row per built-in material: element, lattice, a(293 K) in Å, names, reference constants (N/m), source."""
    from phonon_ml_core.specs import builtin_materials

    return [{"element": m.element, "lattice": m.lattice, "n_shells": m.n_shells,
             "a_293K_angstrom": round(float(m.lattice_parameter_at(ROOM_TEMPERATURE_K)), 4),
             "names": list(m.names), "reference_constants": list(m.reference_constants),
             "reference_temperature_k": m.reference_temperature_k, "reference_source": m.reference_source,
             "lattice_parameter_source": m.lattice_parameter.source}
            for m in builtin_materials().values()]


def instrument_rows() -> list[dict]:
    """One row per instrument: facility, default chopper package and frequency (Hz), default Ei (meV), 2θ range."""
    from phonon_ml_core.specs import get_instrument, list_instruments

    rows = []
    for name in list_instruments():
        i = get_instrument(name)
        rows.append({"instrument": i.name, "facility": i.facility, "chopper_package": i.default_chopper_package,
                     "chopper_frequency": i.default_chopper_frequency, "default_ei_mev": i.default_ei_mev,
                     "ei_range_mev": list(i.ei_range_for(i.default_chopper_package)),
                     "chopper_packages": list(i.chopper_packages), "two_theta_deg": list(i.two_theta_deg),
                     "two_theta_source": i.source})
    return rows


def run(args: argparse.Namespace) -> int:
    from phonon_ml_core.specs import get_material

    if args.material is not None:
        m = get_material(args.material)
        print(dumps(m.to_dict()) if args.json else m.describe())
        return 0
    materials, instruments = material_rows(), instrument_rows()
    if args.json:
        print(dumps({"materials": materials, "instruments": instruments}))
        return 0
    print(f"Built-in materials ({len(materials)}; two-shell Born–von Kármán constants in N/m; "
          "`phonon-ml materials SYMBOL` for one in full):")
    for r in materials:
        consts = ", ".join(f"{n}={v:g}" for n, v in zip(r["names"], r["reference_constants"]))
        print(f"  {r['element']:<3} {r['lattice']}  a(293 K) = {r['a_293K_angstrom']:.4f} Å  {consts}")
        print(f"      constants: {r['reference_source']} (fit at {r['reference_temperature_k']:g} K)")
        print(f"      a(T): {r['lattice_parameter_source']}")
    print(f"\nInstruments ({len(instruments)}; chopper settings and Ei limits from resins):")
    for r in instruments:
        print(f"  {r['instrument']:<8} {r['facility']:<5} chopper {r['chopper_package']} at {r['chopper_frequency']} "
              f"Hz, default Ei {r['default_ei_mev']:g} meV (range {r['ei_range_mev'][0]:g}–{r['ei_range_mev'][1]:g}), "
              f"2θ {r['two_theta_deg'][0]:g}–{r['two_theta_deg'][1]:g}°")
        print(f"      packages: {', '.join(r['chopper_packages'])}")
        print(f"      2θ source: {r['two_theta_source']}")
    return 0
