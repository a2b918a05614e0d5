"""The in-enclave runtime (DESIGN.md, part ``enclave``): boot, serve, sign, keep the log state.

* :mod:`~zcbench.enclave.boot`     load and measure the image; PCRs come from the bytes loaded
* :mod:`~zcbench.enclave.runtime`  per-batch IN/OUT records and signed checkpoints; the serve loop

``python -m zcbench.enclave`` is the enclave process. Nothing here sends a traceback or strategy
internals out: errors leave as error frames with the batch number and a short reason.
"""

from zcbench.enclave.boot import BootError, LoadedImage, load_module_image, module_image_pcrs
from zcbench.enclave.runtime import Attester, EnclaveRuntime, serve

__all__ = [
    "Attester",
    "BootError",
    "EnclaveRuntime",
    "LoadedImage",
    "load_module_image",
    "module_image_pcrs",
    "serve",
]
