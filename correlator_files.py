"""Users' correlator files: every format read in one place, into one structure (method §10).

``read_correlator(path, fmt, tag)`` reads a lattice correlator as lattice physicists keep it and
returns a ``Correlator``: rows ``values`` [N, n] over time slices ``t`` [n] (per-configuration
measurements, or bootstrap / jackknife samples), or a ``mean`` [n] with the covariance of the mean
``cov`` [n, n], plus whatever the file states about the kernel and T.  Both user tools read through
it: make_noise_file.py (a noise file from per-configuration data) and predict_on_user_data.py (the
networks' inputs, ``user_correlators.read_user_samples``).

    format       detected from                 what it holds
    hdf5         .h5, .hdf5                    the project's layout: ``t`` [n] and either a 2-D dataset
                                               (``samples``, or --tag) [N, n] with attribute
                                               ``sample_kind`` (configurations | bootstrap | jackknife)
                                               or ``mean`` [n] + ``cov`` [n, n]; attributes ``kernel``, ``T``;
                                               at the root, or in groups (several correlators)
    pyerrors     .json, .json.gz               pyerrors' JSON of a ``Corr`` or of a list of ``Obs`` (one
                                               per t = 0, 1, ...), or a dictionary of them, read by pyerrors
    gvar         .gvar, or 'TAG v0 v1 ...' text  a gvar/corrfitter data set, read by ``gvar.dataset.Dataset``;
                                               --tag picks the correlator
    lsdensities  text whose first line is       lsdensities' format: header 'N_ms T ...', then for each
                 'N T ...' and then 't value'  measurement T lines 't C(t)', t = 0..T-1
    text         .txt, .dat, .data, .csv       one row per configuration, columns t = 0, 1, ...; a
                                               header row (names, or the indices 0, 1, ...) is skipped
    npy          .npy                          a 2-D array [N_cfg, n], columns t = 0, 1, ...

Three formats may hold several correlators: HDF5 groups, a pyerrors dictionary, a gvar data set
with several tags.  ``read_correlator`` reads one (``tag`` chooses it: a dataset or group, a key, a
tag); ``read_correlators`` reads every correlator of a file at once (predict_on_user_data.py with
several correlators).

Text files (.txt, .dat, .data, .csv) are told apart by their first two lines (``_sniff_text``
states the rule; a header row of names is never taken for gvar's tags).  Every format but
hdf5 holds per-configuration data on t = 0..n-1.  pyerrors and gvar are optional packages
(``pip install -r requirements-formats.txt``); a clear message says so when one is missing.

Per-configuration data are then folded (``fold_periodic``), binned (``bin_samples``) and, for the
networks, resampled (``resample``: bootstrap with a stated N_boot and seed, or jackknife).
"""
from __future__ import annotations

import fileinput
import importlib
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from io_utils import InputError, open_h5, read_dataset
from roles import ROW_KINDS, SAMPLE_KINDS

FORMATS = ("hdf5", "pyerrors", "gvar", "lsdensities", "text", "npy")
TAGGED = ("hdf5", "gvar", "pyerrors")          # the formats whose files may hold several correlators
TEXT_SUFFIXES = (".txt", ".dat", ".data", ".csv", ".gvar")
REQUIREMENTS = "requirements-formats.txt"
RESAMPLE_CHUNK_BYTES = 64 << 20     # the bootstrap's working memory per chunk (resample)


@dataclass
class Correlator:
    """A correlator as read from a user's file (module doc)."""
    path: str
    fmt: str
    key: str | None                   # the dataset or tag read (None: the file has one)
    values: np.ndarray | None         # [N, n] float64 rows (None for the mean + cov layout)
    kind: str | None                  # one of ROW_KINDS; None: the file does not say (hdf5 only)
    t: np.ndarray | None              # [n] integer time slices; None: the file does not say (hdf5)
    mean: np.ndarray | None = None    # [n] and the covariance of the mean [n, n] (hdf5 only)
    cov: np.ndarray | None = None
    kernel: str | None = None         # as stated by the file, if it does
    T: int | None = None
    details: dict = field(default_factory=dict)   # format specifics, recorded in the provenance

    @property
    def n_t(self) -> int:
        return (self.values if self.values is not None else self.mean[None, :]).shape[1]

    @property
    def slices(self) -> np.ndarray:
        """The time slices of the columns: the stated ones, else t = 0, 1, ... (module doc)."""
        return self.t if self.t is not None else np.arange(self.n_t)


# --- detection and dispatch ----------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """The format of ``path``: from its extension, and for text files from their first lines."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".json", ".json.gz")):
        return "pyerrors"
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return "hdf5"
    if suffix == ".npy":
        return "npy"
    if suffix == ".gvar":
        return "gvar"
    if suffix in TEXT_SUFFIXES:
        return _sniff_text(path)
    raise InputError(path, None, f"unknown extension {suffix!r}: give --format ({', '.join(FORMATS)}); "
                     f"detected are .h5/.hdf5, .json/.json.gz, .npy, {'/'.join(TEXT_SUFFIXES)}")


def _data_lines(path: Path):
    """(line number, fields) of the non-empty lines, '#' starting a comment."""
    if not path.is_file():
        raise InputError(path, None, "no such file (expected a correlator)")
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split("#", 1)[0].replace(",", " ").split()
        if fields:
            yield line_no, fields


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _sniff_text(path: Path) -> str:
    """The format of a text file, from its first two data lines; the rule is explicit and never
    reads a line that could be data as anything else:

    - gvar: both lines are 'TAG v0 v1 ...', a first field that is not a number followed by at
      least one field and only numbers (a header of names such as 't0,t1,...' has no numbers
      after its first field, and the line after it has no tag);
    - lsdensities: the first line is integers 'N_ms T ...' and the second 't value' with t = 0;
    - text otherwise (_read_text then skips a header row, saying so)."""
    lines = _data_lines(path)
    first = next(lines, (0, []))[1]
    second = next(lines, (0, first))[1]
    if all(len(f) >= 2 and not _is_number(f[0]) and all(map(_is_number, f[1:])) for f in (first, second)):
        return "gvar"
    if len(first) >= 2 and all(f.isdigit() for f in first) and len(second) == 2 and second[0] == "0":
        return "lsdensities"
    return "text"


def read_correlator(path: str | Path, fmt: str | None = None, tag: str | None = None) -> Correlator:
    """Read a user's correlator file in format ``fmt`` (default: detected), ``tag`` choosing the
    dataset (hdf5), the correlator (gvar) or nothing (other formats: refused if given)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise InputError(path, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    if tag is not None and fmt not in TAGGED:
        raise InputError(path, None, f"--tag {tag!r} given, but a {fmt} file holds one correlator; "
                         "--tag chooses the dataset or group of an hdf5 file, the correlator of a gvar file "
                         "or the key of a pyerrors dictionary")
    if fmt == "hdf5":
        return _read_hdf5(path, tag)
    if not path.is_file():
        raise InputError(path, None, f"no such file (expected a correlator in the {fmt} format)")
    reader = {"pyerrors": _read_pyerrors, "gvar": _read_gvar, "lsdensities": _read_lsdensities,
              "text": _read_text, "npy": _read_npy}[fmt]
    return reader(path, tag) if fmt in TAGGED else reader(path)


def read_correlators(path: str | Path, fmt: str | None = None, tag: str | None = None) -> dict:
    """Every correlator of a file, the file read once, {key: Correlator}: {tag: the one ``tag``
    chooses}; else all it holds -- {None: it} for a file of one, else each group of an HDF5 file
    holding several (a correlator in the layout above in each group), each entry of a pyerrors
    dictionary (``dump_dict_to_json``), each tag of a gvar data set."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if tag is not None or fmt not in TAGGED or not path.is_file():
        return {tag: read_correlator(path, fmt, tag)}
    if fmt == "hdf5":
        keys = _hdf5_keys(path)
        return {key if len(keys) > 1 else None: _read_hdf5(path, key) for key in keys}
    if fmt == "gvar":
        dataset, tags = _gvar_tags(path, None)
        return {t if len(tags) > 1 else None: _gvar_correlator(path, dataset, t) for t in tags}
    structures = _pyerrors_structures(path, None)
    return {key: _pyerrors_correlator(path, key, data) for key, data in structures.items()}


def optional_package(name: str, path, fmt: str):
    """Import an optional reader package, or stop with a message saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise InputError(path, None, f"reading the {fmt} format needs the package {name!r}, which is "
                         f"not installed: pip install {name} (or pip install -r {REQUIREMENTS})") from None


# --- checks shared by every reader -------------------------------------------------------------
def real_rows(data, path, key, what="rows [N, n_t]", row="row", column="column") -> np.ndarray:
    """``data`` as a finite, real 2-D float64 array, or an InputError naming file and key."""
    data = np.asarray(data)
    if np.iscomplexobj(data):
        raise InputError(path, key, f"complex values; expected real {what} (a correlator is real: "
                         "take the part you mean yourself)")
    try:
        data = data.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(path, key, f"not numeric; expected real {what}") from None
    if data.ndim != 2:
        raise InputError(path, key, f"shape {list(data.shape)}; expected 2-D {what} (rows = "
                         "configurations or samples, columns = time slices)")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise InputError(path, key, f"shape {list(data.shape)}: empty; expected {what}")
    bad = np.argwhere(~np.isfinite(data))
    if len(bad):
        raise InputError(path, key, f"NaN or inf at {row} {bad[0][0]}, {column} {bad[0][1]}; expected finite values")
    return data


def integer_slices(t, path, key="t") -> np.ndarray:
    """Time slices as integers (lattice units), refusing fractional ones."""
    t = np.asarray(t, dtype=np.float64)
    if np.any(t != np.round(t)):
        raise InputError(path, key, f"non-integer time slices {t[t != np.round(t)][:5].tolist()}; "
                         "expected integers t = 0, 1, ... (lattice units)")
    if len(set(t.tolist())) != len(t):
        raise InputError(path, key, "repeated time slices; expected each t once")
    return t.astype(np.int64)


def integer_extent(value, path, key="T") -> int:
    """A temporal extent T as an integer, refusing 64.5 or 'abc'."""
    value = value.item() if isinstance(value, np.generic) else _text(value) if isinstance(value, bytes) else value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(path, key, f"{value!r}; expected an integer temporal extent") from None
    if number != round(number) or number < 1:
        raise InputError(path, key, f"{value!r}; expected a positive integer temporal extent")
    return int(number)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- the formats -----------------------------------------------------------------------------------
def _read_hdf5(path: Path, tag: str | None) -> Correlator:
    """The project's layout at the file's root, or inside the group ``tag`` (a file holding several
    correlators, one group each: its attributes first, then the file's)."""
    with open_h5(path, "correlator (t, and samples or mean + cov)") as h5:
        root, prefix = h5, ""
        if tag is not None and isinstance(h5.get(tag), h5py.Group):
            h5, prefix, tag = h5[tag], f"{tag}/", None
        attrs = {k: (h5.attrs if k in h5.attrs else root.attrs)[k] for k in ("kernel", "T", "sample_kind")
                 if k in h5.attrs or k in root.attrs}
        key = tag or "samples"
        if key in h5 and isinstance(h5[key], h5py.Group):
            raise InputError(path, prefix + key, f"an HDF5 group (with {sorted(h5[key].keys())}); expected a "
                             "dataset [N, n_t] of samples")
        group = h5[key].parent if key in h5 else h5
        t = integer_slices(read_dataset(group, "t", shape=(None,)), path) if "t" in group else None
        if key in h5:
            values = real_rows(read_dataset(h5, key, shape=(None, None)), path, prefix + key)
            mean = cov = None
        elif tag is None and "mean" in h5 and "cov" in h5:
            mean = read_dataset(h5, "mean", shape=(None,))
            cov = read_dataset(h5, "cov", shape=(len(mean), len(mean)))
            values = None
        else:
            found = []
            h5.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
            raise InputError(path, prefix + key, f"missing; expected a dataset '{key}' [N, n_t]"
                             + ("" if tag else " or 'mean' [n_t] and 'cov' [n_t, n_t]")
                             + f" (the {'group' if prefix else 'file'} has datasets {found})")
    n = values.shape[1] if values is not None else len(mean)
    if t is not None and len(t) != n:
        raise InputError(path, prefix + "t", f"{len(t)} time slices for {n} columns of '{key}'")
    kind = _text(attrs["sample_kind"]) if "sample_kind" in attrs else None
    if kind is not None and kind not in ROW_KINDS:
        raise InputError(path, "sample_kind", f"{kind!r}; expected one of {ROW_KINDS}")
    if values is None:
        kind = None
    return Correlator(str(path), "hdf5", prefix + (key if values is not None else "mean+cov"), values, kind, t,
                      mean, cov, kernel=_text(attrs["kernel"]) if "kernel" in attrs else None,
                      T=integer_extent(attrs["T"], path) if "T" in attrs else None)


def _hdf5_keys(path: Path) -> list:
    """[None] for a correlator at the file's root, else the groups that hold one (``samples``, or
    ``mean`` + ``cov``), in name order."""
    def holds(group) -> bool:
        return isinstance(group.get("samples"), h5py.Dataset) or ("mean" in group and "cov" in group)
    with open_h5(path, "correlator (t, and samples or mean + cov)") as h5:
        if holds(h5):
            return [None]
        groups = []
        h5.visititems(lambda name, obj: groups.append(name) if isinstance(obj, h5py.Group) and holds(obj) else None)
    return groups or [None]


def _per_configuration(path, fmt, key, values, **kwargs) -> Correlator:
    values = real_rows(values, path, key, "per-configuration values [N_cfg, n_t]", "configuration", "t =")
    return Correlator(str(path), fmt, key, values, "configurations", np.arange(values.shape[1]), **kwargs)


def _read_npy(path: Path) -> Correlator:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise InputError(path, None, f"not a NumPy .npy array ({err}); expected [N_cfg, n_t]") from None
    return _per_configuration(path, "npy", None, data)


def _numbers(fields, path, line_no) -> list[float]:
    try:
        return [float(f) for f in fields]
    except ValueError:
        raise InputError(path, f"line {line_no}", f"{' '.join(fields)[:60]!r} is not a row of "
                         "numbers; expected one configuration per line") from None


def _header(fields) -> bool:
    """A header row: column names (a field that is not a number), or the column indices
    0, 1, ..., n-1 themselves (pandas' ``to_csv(index=False)`` of an unnamed DataFrame)."""
    return not all(map(_is_number, fields)) or fields == [str(i) for i in range(len(fields))]


def _read_text(path: Path) -> Correlator:
    """One configuration per line; a header row first is skipped, saying so on stderr, and refused
    if it does not name every column (a DataFrame written with its index)."""
    lines = list(_data_lines(path))
    if lines and _header(lines[0][1]):
        (line_no, header), lines = lines[0], lines[1:]
        if lines and len(header) != len(lines[0][1]):
            raise InputError(path, f"line {line_no}", f"a header of {len(header)} names over rows of "
                             f"{len(lines[0][1])} values (an index column? write with index=False); "
                             "expected one name per time slice")
        print(f"note: {path}: line {line_no} {' '.join(header)[:40]!r} is a header row, not data; "
              "skipped", file=sys.stderr)
    rows = [_numbers(fields, path, line_no) for line_no, fields in lines]
    if not rows:
        raise InputError(path, None, "no data rows; expected one configuration per line")
    first = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != first), None)
    if bad is not None:
        raise InputError(path, f"line {lines[bad][0]}", f"{len(rows[bad])} values; expected {first} like "
                         "the first row (one value per time slice)")
    return _per_configuration(path, "text", None, rows)


def _read_lsdensities(path: Path) -> Correlator:
    """lsdensities' text format (lsdensities.utils.rhoUtils.read_datafile / print_hlt_format)."""
    lines = list(_data_lines(path))
    if not lines:
        raise InputError(path, None, "empty; expected the lsdensities header 'N_ms T ...'")
    header = lines[0][1]
    if len(header) < 2 or not all(f.isdigit() for f in header[:2]) or int(header[0]) < 1 or int(header[1]) < 1:
        raise InputError(path, "header", f"{' '.join(header)[:60]!r}; expected 'N_ms T ...' (two positive "
                         "integers: measurements and time slices)")
    n_ms, T = int(header[0]), int(header[1])
    body = lines[1:]
    if len(body) != n_ms * T:
        raise InputError(path, "header", f"says {n_ms} measurements of {T} time slices = {n_ms * T} lines "
                         f"'t value', but the file has {len(body)}")
    values = np.empty((n_ms, T))
    for i, (line_no, fields) in enumerate(body):
        n, t = divmod(i, T)
        if len(fields) != 2 or fields[0] != str(t):
            raise InputError(path, f"line {line_no}", f"{' '.join(fields)[:60]!r}; expected 't value' with "
                             f"t = {t} (measurement {n}: t = 0..{T - 1} in order)")
        values[n, t] = _numbers(fields[1:], path, line_no)[0]
    return _per_configuration(path, "lsdensities", None, values, T=T,
                              details={"lsdensities_header": " ".join(header)})


def _gvar_tags(path: Path, tag: str | None) -> tuple[dict, list]:
    """({tag: rows} of a gvar/corrfitter data set read by gvar.dataset.Dataset, the tags to read:
    ``tag``, or all of them)."""
    gv = optional_package("gvar", path, "gvar")
    try:
        dataset = gv.dataset.Dataset(str(path))
    except ValueError as err:
        raise InputError(path, tag, f"gvar's reader: {err}; expected lines 'TAG v0 v1 ...', one "
                         "configuration per line, the same number of values on every line of a tag") from None
    finally:
        fileinput.close()           # gvar reads with fileinput, which stays active after an error
    tags = list(dataset.keys())
    if not tags:
        raise InputError(path, None, "no data lines; expected lines 'TAG v0 v1 ...'")
    if tag is not None and tag not in dataset:
        raise InputError(path, tag, f"no lines with this tag; the file has tags {sorted(tags)}")
    return dataset, [tag] if tag is not None else tags


def _gvar_correlator(path: Path, dataset, tag: str) -> Correlator:
    rows = np.asarray(dataset[tag])
    if rows.ndim == 1:                  # one value per line: gvar makes them scalars
        rows = rows[:, None]
    return _per_configuration(path, "gvar", tag, rows, details={"gvar_tags": list(dataset.keys())})


def _read_gvar(path: Path, tag: str | None) -> Correlator:
    """A gvar/corrfitter data set: 'TAG v0 v1 ...' per configuration; ``tag`` chooses the correlator
    of a file holding several."""
    dataset, tags = _gvar_tags(path, tag)
    if len(tags) > 1:
        raise InputError(path, "tag", f"the file holds several correlators {sorted(tags)}; "
                         "choose one with --tag")
    return _gvar_correlator(path, dataset, tags[0])


def _pyerrors_structures(path: Path, tag: str | None) -> dict:
    """{key: structure} of pyerrors' JSON (.json or .json.gz), read by pyerrors: {None: it} for a
    file of one structure; the entries of a dictionary (``dump_dict_to_json``), or the one ``tag``
    names."""
    pe = optional_package("pyerrors", path, "pyerrors")
    gz = path.name.lower().endswith(".gz")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            content = pe.input.json.load_json(str(path), verbose=False, gz=gz, full_output=True)
            description = content.get("description")
            if isinstance(description, dict) and "OBSDICT" in description:
                data = pe.input.json.load_json_dict(str(path), verbose=False, gz=gz)
            else:
                structures = content["obsdata"]         # as load_json returns them: one, or a list
                data = {None: structures[0] if len(structures) == 1 else structures}
    except Exception as err:      # noqa: BLE001 -- pyerrors raises anything on a bad file; named here
        raise InputError(path, None, f"pyerrors could not read it ({type(err).__name__}: {err}); expected "
                         "pyerrors' JSON of a Corr or of a list of Obs") from None
    if tag is not None:
        if None in data:
            raise InputError(path, None, f"--tag {tag!r} given, but the file holds one correlator, not a "
                             "dictionary of them")
        if tag not in data:
            raise InputError(path, tag, f"no such key; the dictionary has keys {sorted(data)}")
        return {tag: data[tag]}
    return data


def _read_pyerrors(path: Path, tag: str | None = None) -> Correlator:
    """pyerrors' JSON of a Corr or of a list of Obs, one per t = 0, 1, ...; of a dictionary of them,
    the one ``tag`` names."""
    structures = _pyerrors_structures(path, tag)
    if len(structures) > 1:
        raise InputError(path, "tag", f"a dictionary of several correlators {sorted(structures)}; "
                         "choose one with --tag")
    (key, data), = structures.items()
    return _pyerrors_correlator(path, key, data)


def _pyerrors_correlator(path: Path, key: str | None, data) -> Correlator:
    """One pyerrors structure (a Corr or a list of Obs) as per-configuration rows."""
    pe = optional_package("pyerrors", path, "pyerrors")
    if isinstance(data, pe.Corr):
        if data.N != 1:
            raise InputError(path, None, f"a {data.N}x{data.N} matrix correlator; expected a single "
                             "correlator (project it onto one operator first)")
        empty = [t for t, entry in enumerate(data.content) if entry is None]
        if empty:
            raise InputError(path, f"t = {empty[0]}", f"the Corr has no value at t = {empty}; expected one "
                             "Obs at every t = 0..T-1")
        observables, what = [entry[0] for entry in data.content], "Corr"
    elif isinstance(data, (list, np.ndarray)) and len(data) and all(isinstance(o, pe.Obs) for o in np.ravel(data)):
        if np.ndim(data) != 1:
            raise InputError(path, None, f"an array of Obs of shape {list(np.shape(data))}; expected a "
                             "list of Obs, one per time slice")
        observables, what = list(data), "list of Obs"
    else:
        raise InputError(path, None, f"holds {type(data).__name__}; expected a pyerrors Corr or a list "
                         "of Obs, one per time slice t = 0, 1, ...")
    first = observables[0]
    for t, obs in enumerate(observables):
        if obs.cov_names:
            raise InputError(path, f"t = {t}", f"an Obs with covariance-only parts {obs.cov_names}; "
                             "expected per-configuration data")
        if len(obs.e_names) != 1:
            raise InputError(path, f"t = {t}", f"an Obs over ensembles {obs.e_names}; expected one ensemble")
        if obs.names != first.names or any(list(obs.idl[r]) != list(first.idl[r]) for r in obs.names):
            raise InputError(path, f"t = {t}", f"measured on other configurations than t = 0 "
                             f"(replicas {obs.names}); expected the same configurations at every t")
    values = np.array([np.concatenate([obs.r_values[r] + obs.deltas[r] for r in first.names])
                       for obs in observables]).T
    return _per_configuration(path, "pyerrors", key, values, details={
        "pyerrors_structure": what, "ensemble": first.e_names[0], "replicas": list(first.names),
        "configurations_per_replica": [len(first.idl[r]) for r in first.names]})


# --- per-configuration data: fold, bin, resample --------------------------------------------------
def fold_periodic(samples: np.ndarray) -> np.ndarray:
    """(C(t) + C(T−t))/2 for t = 0..T/2 of samples over t = 0..T−1 (T = number of columns)."""
    T = samples.shape[1]
    t = np.arange(T // 2 + 1)
    return 0.5 * (samples[:, t] + samples[:, (T - t) % T])


def fold_correlator(corr: Correlator, T: int | None = None) -> Correlator:
    """The folded correlator (mesons; not baryons, whose backward state is another one): its
    columns must be t = 0..T-1 with T the stated extent, if any."""
    T = T or corr.T or corr.n_t
    if corr.values is None or not np.array_equal(corr.slices, np.arange(T)):
        has = "a mean and covariance" if corr.values is None else f"t = {describe_slices(corr.slices)}"
        raise InputError(corr.path, "t", f"cannot fold: folding needs rows over t = 0..{T - 1} "
                         f"(T = {T}); the file has {has}")
    values = fold_periodic(corr.values)
    return Correlator(corr.path, corr.fmt, corr.key, values, corr.kind, np.arange(values.shape[1]),
                      kernel=corr.kernel, T=T, details={**corr.details, "folded": True})


def describe_slices(t) -> str:
    """'1..32' for contiguous slices, else the list."""
    t = np.asarray(t).astype(int)
    if len(t) == 1:
        return str(t[0])
    contiguous = len(t) > 1 and np.array_equal(t, np.arange(t[0], t[0] + len(t)))
    return f"{t[0]}..{t[-1]}" if contiguous else str(t.tolist())


def bin_samples(samples: np.ndarray, bin_size: int) -> np.ndarray:
    """Averages of consecutive configurations in bins of ``bin_size``: [N_cfg // b, n].

    The last N_cfg % b configurations are dropped (an incomplete bin would carry another weight).
    """
    n_bins = samples.shape[0] // bin_size
    return samples[:n_bins * bin_size].reshape(n_bins, bin_size, samples.shape[1]).mean(axis=1)


def resample(values: np.ndarray, method: str, n_boot: int, rng: np.random.Generator,
             chunk_bytes: int = RESAMPLE_CHUNK_BYTES) -> np.ndarray:
    """Samples of the mean of ``values`` [N, n]: ``n_boot`` bootstrap means (configurations drawn
    with replacement, ``rng``), or the N jackknife (leave-one-out) means.

    The bootstrap draws its index matrix [n_boot, N] in chunks of bootstrap samples, each chunk's
    gathered configurations [k, N, n] within ``chunk_bytes``: the memory is bounded whatever
    n_boot x N, and the result is bitwise that of one draw of the whole matrix (the generator
    gives the same integers in the same order, each mean sums the same values in the same order).
    """
    n = values.shape[0]
    if method == "bootstrap":
        per_sample = n * (values.shape[1] * values.itemsize + 8)        # gathered rows + their indices
        k = max(1, chunk_bytes // per_sample)
        out = np.empty((n_boot, values.shape[1]))
        for start in range(0, n_boot, k):
            stop = min(start + k, n_boot)
            out[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        return out
    if method == "jackknife":
        return (values.sum(axis=0) - values) / (n - 1)
    raise ValueError(f"resampling {method!r}: expected one of {SAMPLE_KINDS}")
