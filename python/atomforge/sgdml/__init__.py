"""sGDML: symmetric gradient-domain machine-learning force fields (global models of one molecule).

Chmiela et al., Sci. Adv. 3, e1603015 (2017); Nat. Commun. 9, 3887 (2018); CPC 240, 38 (2019).
Prediction runs in the C++ core (``atomforge.load(model.afm)`` / ``SGDML.predict``); this
package recovers permutations, trains, and converts to/from the ``sgdml`` package's .npz models.
Documentation: docs/sgdml.md.
"""
from .model import SGDMLParameters, descriptors, read_sgdml, save_sgdml, tril_perms
from .npz import export_sgdml_npz, import_sgdml_npz
from .perms import find_perms
from .train import fit, predict, train_sgdml

__all__ = ["SGDMLParameters", "descriptors", "read_sgdml", "save_sgdml", "tril_perms", "find_perms",
           "import_sgdml_npz", "export_sgdml_npz", "fit", "predict", "train_sgdml"]
