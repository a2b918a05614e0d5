"""Promotion: notebook → strategy module → sealed payload → reproducible, measured bundle.

Owns extraction and lint of the cells tagged ``strategy``, the deterministic bundle and local
image, their PCRs (by the EIF algorithm of :mod:`zcbench.nitro.eif`), writing ``commitment.json``
and the manifest (their one type each: :class:`zcbench.nitro.commitment.Commitment`,
:class:`zcbench.enclave.manifest.BundleManifest`), the rendering of ``enclave_templates/`` and
the reproducibility check. The measured image never depends on the sealing key. It must never
hold plaintext strategy code outside the sealed payload: the module exists only in memory while
building.
"""

from zcbench.packager._build import (
    COMMITMENT_SCHEMA,
    DEFAULT_BASE_IMAGE,
    DEFAULT_SOURCE_DATE_EPOCH,
    MANIFEST_SCHEMA,
    Build,
    package_notebook,
)
from zcbench.packager._check import BuildCheck, BuildFailure, check_build, load_build
from zcbench.packager._extract import (
    DEFAULT_ALLOWED_IMPORTS,
    ExtractedStrategy,
    LintProblem,
    NotebookError,
    extract_strategy,
    read_parameters,
)
from zcbench.packager._image import (
    measure_image,
    measure_local_image,
    read_app_image,
    runtime_files,
)
from zcbench.packager._layout import BuildPaths
from zcbench.packager._repro import (
    BUILD_VARIANTS,
    BuildVariant,
    ReproducibilityReport,
    check_reproducible,
    verify_reproducible,
)
from zcbench.packager._tar import deterministic_tar, read_tar_members

__all__ = [
    "BUILD_VARIANTS",
    "COMMITMENT_SCHEMA",
    "DEFAULT_ALLOWED_IMPORTS",
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_SOURCE_DATE_EPOCH",
    "MANIFEST_SCHEMA",
    "Build",
    "BuildCheck",
    "BuildFailure",
    "BuildPaths",
    "BuildVariant",
    "ExtractedStrategy",
    "LintProblem",
    "NotebookError",
    "ReproducibilityReport",
    "check_build",
    "check_reproducible",
    "deterministic_tar",
    "extract_strategy",
    "load_build",
    "measure_image",
    "measure_local_image",
    "package_notebook",
    "read_app_image",
    "read_parameters",
    "read_tar_members",
    "runtime_files",
    "verify_reproducible",
]
