"""Training data: an in-memory :class:`Dataset` (eV, Angstrom), readers for rMD17, sGDML, DeePMD,
n2p2 and ASE files (:func:`load_dataset`), reproducible splits and checksummed downloads.

Example::

    from atomforge.data import load_dataset, split_indices, save_split
    ds = load_dataset("rmd17_ethanol_train_01.npz")          # kcal/mol -> eV
    split = split_indices(len(ds), (0.8, 0.1, 0.1), seed=0)
    save_split("split.json", split, metadata={"dataset_sha256": ds.sha256(), "seed": 0})
    train = ds.subset(split["train"])
"""
from .dataset import Dataset
from .download import PUBLIC_DATASETS, fetch, fetch_public
from .readers import detect_format, load_dataset
from .splits import load_split, save_split, split_indices

__all__ = ["Dataset", "load_dataset", "detect_format", "split_indices", "save_split", "load_split",
           "fetch", "fetch_public", "PUBLIC_DATASETS"]
