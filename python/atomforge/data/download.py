"""Checksummed downloads into a local cache (through pooch), and a small registry of public datasets.

Downloads go through `pooch <https://www.fatiando.org/pooch>`_ (``pooch.retrieve``): nothing is
downloaded at import time; every file is verified against a SHA-256 given in advance; pooch
streams into a temporary file in the cache folder and moves it into place only once the checksum
matches, so an interrupted or corrupted download never leaves a file under the final name.
``file://`` URLs (local mirrors, tests) are copied by a small downloader passed to pooch.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

__all__ = ["fetch", "fetch_public", "default_cache_dir", "file_sha256", "PUBLIC_DATASETS"]

PathLike = Union[str, "os.PathLike[str]"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$ATOMFORGE_CACHE`` if set (and non-empty), else ``~/.cache/atomforge``."""
    env = os.environ.get("ATOMFORGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "atomforge"


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_url_downloader(url: str, output_file, pooch_obj=None) -> None:
    """pooch downloader for ``file://`` URLs: copy the local file into pooch's temporary file."""
    src = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
    with open(src, "rb") as fin:  # FileNotFoundError (an OSError) when missing
        if hasattr(output_file, "write"):
            shutil.copyfileobj(fin, output_file, _CHUNK)
        else:
            with open(output_file, "wb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)


def fetch(url: str, sha256: str, cache_dir: Optional[PathLike] = None, filename: Optional[str] = None, *,
          timeout: float = 60.0) -> Path:
    """Return a local, checksum-verified copy of ``url``, downloading it only when needed.

    Args:
        url: ``http(s)://``, ``ftp://`` or ``file://`` URL.
        sha256: expected hex SHA-256 of the file (64 hex digits, any case). Required.
        cache_dir: folder for the cache (created if missing); default :func:`default_cache_dir`
            (``$ATOMFORGE_CACHE`` or ``~/.cache/atomforge``).
        filename: name of the cached file; default the last component of the URL's path.
        timeout: seconds for the connection (HTTP downloads).

    Returns:
        Path of the cached file, ``cache_dir / filename``.

    Behaviour: if the cached file exists and its SHA-256 matches, it is returned without any
    network access. If it exists but does not match (corrupted or truncated), a warning is
    issued and pooch downloads it again. A download is verified before it replaces anything.

    Raises:
        ValueError: ``sha256`` is not 64 hex digits; no usable file name (URL path ends with
            ``/``, or ``filename`` contains a path separator or is ``.``/``..``); the download's
            checksum differs (the message names the URL, the expected and the actual SHA-256;
            the download is discarded and the cache is left unchanged).
        OSError: the download failed (naming the URL); nothing is left in the cache.
    """
    import pooch

    expected = str(sha256).strip().lower()
    if not _HEX64.match(expected):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if filename is None:
        filename = urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name)
    if not filename or filename in (".", "..") or "/" in filename or os.sep in filename or \
            (os.altsep and os.altsep in filename):
        raise ValueError(f"no usable cache file name for {url!r} (got {filename!r}); pass filename=")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / filename
    if target.is_file():
        actual = file_sha256(target)
        if actual == expected:
            return target
        warnings.warn(f"cached file {target} has sha256 {actual}, expected {expected}; downloading it again",
                      stacklevel=2)
    if urllib.parse.urlparse(url).scheme == "file":
        downloader = _file_url_downloader
    else:
        downloader = pooch.downloaders.choose_downloader(url)
        if hasattr(downloader, "kwargs"):
            downloader.kwargs.setdefault("timeout", timeout)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch announces every download at INFO
    try:
        path = pooch.retrieve(url, known_hash=f"sha256:{expected}", fname=filename, path=cache,
                              downloader=downloader)
    except ValueError as exc:
        m = re.search(r"but got ([0-9a-fA-F]{64})", str(exc))
        if "hash" not in str(exc).lower():
            raise
        raise ValueError(f"sha256 mismatch for {url}: expected {expected}, got {m.group(1) if m else '?'} "
                         f"(the download was discarded)") from None
    except OSError as exc:  # requests' errors are OSErrors too
        raise OSError(f"download of {url} failed: {exc}") from exc
    finally:
        logger.setLevel(level)
    return Path(path)


# ---------------------------------------------------------------------------------- registry
_RMD17_COMMIT = "4f6bb0a186822c90d47cd98b7a27991fe0b3173b"
_RMD17_BASE = f"https://raw.githubusercontent.com/andersx/rmd17-npz/{_RMD17_COMMIT}/rmd17-npz/"
# (name, bytes, sha256) of the rMD17 npz files at that commit. The checksums were computed on
# byte-identical copies of these files (their git blob ids equal the ones in that commit).
_RMD17_FILES = (
    ("rmd17_aspirin_test_01", 1537803, "a3c3b61e782d01e6dd649a126004903f7873e8e7ee5034135abfdb8873be711d"),
    ("rmd17_aspirin_train_01", 1537803, "d460f0e43a1a9411b55cdcd9cdbeb9466ae62851ac91392516ab88e4ebc68143"),
    ("rmd17_azobenzene_test_01", 1753806, "e83c87fe541a95e7349684e47294821ada708a780b59c469d3792588213cfc05"),
    ("rmd17_azobenzene_train_01", 1753806, "7a2ce543773f6cb7a2cccecbc37fd479781e27ec2d0bb4e5f9ecff8e404e5857"),
    ("rmd17_benzene_test_01", 889794, "4aad4aa2f5ae6aa78d2d9f5da7cb285c97864cfbdf054b67de12a1429b249534"),
    ("rmd17_benzene_train_01", 889794, "6e69deb5dc8663c2d2461cc50e522c74742acea7b4185da348fc08585a15cdc7"),
    ("rmd17_ethanol_test_01", 673791, "c3594a0f93d5992e02f9eb671392fb2e5021b3fa4f902417886966d1e4f64e1e"),
    ("rmd17_ethanol_test_02", 673791, "b3276f23d28d4588d008e19ad68e784278caf58e90c7139a11cd7e950b8d3eb4"),
    ("rmd17_ethanol_test_03", 673791, "1ba5586225c0439d5880c4b860e5a84dde042f947b90667178bb6f819241c284"),
    ("rmd17_ethanol_test_04", 673791, "1ec462b9333e7984ac97fefe66294ca51cceb64c8e4afd24d9d8124b81fa6fb0"),
    ("rmd17_ethanol_test_05", 673791, "af80798e2c0b309b8ad65a5c539651089c3d7f8d0528686c4a74e2132ecc9a1f"),
    ("rmd17_ethanol_train_01", 673791, "096946747b8d9dcfa042b44f8debbd3da387dfe1586b659e3be789cc4927316a"),
    ("rmd17_ethanol_train_02", 673791, "b4bd8ed96ffaa31fe50634ab8705684151011033c3dd73927d61931fc8fda863"),
    ("rmd17_ethanol_train_03", 673791, "26a3a378a63486cb8b127f0f4a8af861996a1759d59e9457288cf11d86967cae"),
    ("rmd17_ethanol_train_04", 673791, "14796fc0c778e089292e514aee2592b8c4395f7ce4648c8aa22e19030421d0da"),
    ("rmd17_ethanol_train_05", 673791, "fa8b76b36482fff572fc01f62120403c7e6678f5d13f302362e4c9e1cd57a8a6"),
    ("rmd17_malonaldehyde_test_01", 673791, "147404574d4fe3204dea7eb3799426d264e36b7900012f27fd2d26a26832fdaf"),
    ("rmd17_malonaldehyde_train_01", 673791, "95723385cdfd7f8446a84cdff607f14901e4c2b3949db7a965147dc5098d8ee1"),
    ("rmd17_naphthalene_test_01", 1321800, "80a19bca6aaa5cdf241007d6a7332e7b96a8e6ef362c1badcdb86a574ac3fe06"),
    ("rmd17_naphthalene_train_01", 1321800, "940f41110785fb0d3fa5feac68800cf4c68bd05fd55d563d3adacf5247d7688a"),
    ("rmd17_paracetamol_test_01", 1465802, "99e09ff10b54c55830c011c0959b643bede0512a89ae5b5b9a11e8abea9b3eaa"),
    ("rmd17_paracetamol_train_01", 1465802, "819513d42011a63773ff1baf61b06f9f0884370fbdb6539d6f11fc6cb580a0ba"),
    ("rmd17_salicylic_test_01", 1177798, "4a03f66c719d7684f39620b2bae6842613482a86cdd4e6f95115ae4d37f03cc0"),
    ("rmd17_salicylic_train_01", 1177798, "9f96d79ec7a66dec666dbba60307c083ede80ecc919e0c9513ad9accfe43b5c0"),
    ("rmd17_toluene_test_01", 1105797, "8a658b9bf1b7a5c1abaa03846ee6302725e02bdcd2ab720ef94da0be55625faa"),
    ("rmd17_toluene_train_01", 1105797, "24d0642f897a1da1fdc4dbdd0a9c2a7f6082dd88e02954b12896a45a7a5fbac7"),
    ("rmd17_uracil_test_01", 889794, "ceda757f7670d97080ec3c28dfb559aeb8ca54f49e7f0da0682fa1eb5ac00907"),
    ("rmd17_uracil_train_01", 889794, "e1d450430362e3bebdeea96b24501f5e56a5a8af1eb02d50cb763f48b51523cf"),
)

#: name -> entry of public datasets :func:`fetch_public` knows. Each entry is a dict with
#: ``url``, ``sha256``, ``filename``, ``size`` (bytes), ``format`` (for :func:`load_dataset`),
#: ``license``, ``description`` and ``citation``.
#: rMD17 (revised MD17): PBE/def2-SVP energies (kcal/mol) and forces (kcal/mol/Angstrom), 1000
#: frames per file, from github.com/andersx/rmd17-npz (CC0-1.0) at commit 4f6bb0a1; train_NN and
#: test_NN of one split are disjoint. Cite A. S. Christensen and O. A. von Lilienfeld,
#: Mach. Learn.: Sci. Technol. 1, 045018 (2020), and S. Chmiela et al., Sci. Adv. 3, e1603015 (2017).
PUBLIC_DATASETS: Dict[str, Dict[str, object]] = {
    name: {
        "url": f"{_RMD17_BASE}{name}.npz",
        "sha256": digest,
        "filename": f"{name}.npz",
        "size": size,
        "format": "rmd17",
        "license": "CC0-1.0",
        "description": f"rMD17 {name.split('_')[1]} {name.split('_')[2]} split {name.split('_')[3]}: "
                       "1000 frames, PBE/def2-SVP, kcal/mol and kcal/mol/Angstrom",
        "citation": "A. S. Christensen, O. A. von Lilienfeld, Mach. Learn.: Sci. Technol. 1, 045018 (2020)",
    }
    for name, size, digest in _RMD17_FILES
}


def fetch_public(name: str, cache_dir: Optional[PathLike] = None) -> Path:
    """Fetch a dataset of :data:`PUBLIC_DATASETS` by name (see :func:`fetch`).

    Load the returned file with ``load_dataset(path, PUBLIC_DATASETS[name]["format"])``.

    Raises:
        ValueError: an unknown name (the message lists the known ones), or a checksum mismatch.
        OSError: the download failed.
    """
    if name not in PUBLIC_DATASETS:
        raise ValueError(f"unknown public dataset {name!r}; known: {sorted(PUBLIC_DATASETS)}")
    e = PUBLIC_DATASETS[name]
    return fetch(str(e["url"]), str(e["sha256"]), cache_dir=cache_dir, filename=str(e["filename"]))
