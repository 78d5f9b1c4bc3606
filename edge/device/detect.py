"""What device is this? A pure function of a root directory and the environment.

`detect(root, env)` reads only files under `root` (default `/`), so a staged tree built from real
sample files describes a Jetson exactly as the device itself would (reference/jetson.md §1). The
environment can override what a tree cannot carry (architecture, Python version, L4T version), which
makes detection testable on any machine:

| variable | overrides |
|---|---|
| `TINYVLA_EDGE_ROOT` | the root directory (used when `root` is not given) |
| `TINYVLA_EDGE_ARCH` | the CPU architecture (`aarch64`, `x86_64`) |
| `TINYVLA_EDGE_PYTHON` | the system Python version (`3.10`) |
| `TINYVLA_EDGE_L4T` | the L4T version (`36.4.3`), like jetson-containers' `L4T_VERSION` |
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict

from edge.device.nvpmodel import NvpmodelConf, read_conf, read_status
from edge.errors import EdgeError

ROOT_ENV = "TINYVLA_EDGE_ROOT"
ARCH_ENV = "TINYVLA_EDGE_ARCH"
PYTHON_ENV = "TINYVLA_EDGE_PYTHON"
L4T_ENV = "TINYVLA_EDGE_L4T"


class UnsupportedDevice(EdgeError):
    """A Jetson this toolkit cannot provision (JetPack 5, unknown release) or not a Jetson at all."""


# L4T -> JetPack, from jetson_stats' NVIDIA_JETPACK (reference §1.2). Where jetson-containers
# disagrees the reference explains which to trust (36.5.0 is 6.2.2 per a real apt capture).
JETPACK_BY_L4T: dict[str, str] = {
    "34.1.0": "5.0 DP", "34.1.1": "5.0.1 DP",
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.0": "5.1.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2",
    "35.5.0": "5.1.3", "35.6.0": "5.1.4", "35.6.1": "5.1.5", "35.6.2": "5.1.5", "35.6.3": "5.1.5",
    "35.6.4": "5.1.6",
    "36.0.0": "6.0 EA", "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.2": "6.1",
    "36.4.3": "6.2", "36.4.4": "6.2.1", "36.4.7": "6.2.1", "36.5.0": "6.2.2",
    "38.2.0": "7.0", "38.2.1": "7.0", "38.2.2": "7.0", "38.4.0": "7.1",
    "39.0.0": "7.2 EA", "39.2.0": "7.2",
}


@dataclass(frozen=True)
class ReleaseLine:
    """What one L4T major release ships (reference §1.2 major-version table and §1.3)."""

    jetpack: str  # used only when the exact L4T version is not in JETPACK_BY_L4T
    ubuntu: str
    python: str
    supported: bool


RELEASE_BY_L4T_MAJOR: dict[int, ReleaseLine] = {
    34: ReleaseLine("5.0", "20.04", "3.8", supported=False),
    35: ReleaseLine("5.1", "20.04", "3.8", supported=False),
    36: ReleaseLine("6", "22.04", "3.10", supported=True),
    38: ReleaseLine("7.0", "24.04", "3.12", supported=True),
    39: ReleaseLine("7.2", "24.04", "3.12", supported=True),
}


@dataclass(frozen=True)
class CudaStack:
    """CUDA, cuDNN and TensorRT versions a JetPack release ships (reference §1.3)."""

    cuda: str
    cudnn: str
    tensorrt: str


def expected_stack(jetpack: str) -> CudaStack | None:
    """The CUDA stack NVIDIA ships with a JetPack version; used when the files say nothing."""
    major_minor = tuple(int(p) for p in re.findall(r"\d+", jetpack)[:2])
    if major_minor[:1] == (5,):
        return CudaStack("11.4", "8.6", "8.5")
    if major_minor == (6, 0):
        return CudaStack("12.2", "8.9", "8.6")
    if major_minor[:1] == (6,):
        return CudaStack("12.6", "9.3", "10.3")
    if major_minor in ((7, 0), (7, 1)):
        return CudaStack("13.0", "9.12", "10.13")
    if major_minor[:1] == (7,):
        return CudaStack("13.2", "9.20", "10.16")
    return None


@dataclass(frozen=True)
class ModuleFacts:
    """One Jetson module part number (reference §1.4, jetson_stats MODULE_NAME_TABLE)."""

    name: str
    ram_gb: int | None  # None: the part comes in several sizes, use /proc/meminfo
    cpu_cores: int | None
    nvpmodel_conf: str | None  # conf NVIDIA's nvpower.sh links for this module (§2.1)


MODULES: dict[str, ModuleFacts] = {
    "p3767-0000": ModuleFacts("Jetson Orin NX 16GB", 16, 8, "nvpmodel_p3767_0000"),
    "p3767-0001": ModuleFacts("Jetson Orin NX 8GB", 8, 6, "nvpmodel_p3767_0001"),
    "p3767-0002": ModuleFacts("Jetson Orin NX 16GB", 16, 8, "nvpmodel_p3767_0000"),
    "p3767-0003": ModuleFacts("Jetson Orin Nano 8GB", 8, 6, "nvpmodel_p3767_0003"),
    "p3767-0004": ModuleFacts("Jetson Orin Nano 4GB", 4, 6, "nvpmodel_p3767_0004"),
    "p3767-0005": ModuleFacts("Jetson Orin Nano 8GB (devkit module)", 8, 6, "nvpmodel_p3767_0003"),
    "p3701-0000": ModuleFacts("Jetson AGX Orin (devkit module)", None, 12, "nvpmodel_p3701_0000"),
    "p3701-0002": ModuleFacts("IGX Orin", None, None, "nvpmodel_p3701_0002"),
    "p3701-0004": ModuleFacts("Jetson AGX Orin 32GB", 32, 8, "nvpmodel_p3701_0004"),
    "p3701-0005": ModuleFacts("Jetson AGX Orin 64GB", 64, 12, "nvpmodel_p3701_0000"),
    "p3701-0008": ModuleFacts("Jetson AGX Orin Industrial", 64, 12, "nvpmodel_p3701_0000"),
    # Thor's conf name and core count are not in the reference; the conf is read at run time anyway.
    "p3834-0008": ModuleFacts("Jetson AGX Thor (devkit module)", 128, None, None),
}

# "Super" confs exist only for these modules; the devkit module uses the 0003 file (§2.1).
SUPER_CONFS = {"p3767-0000", "p3767-0001", "p3767-0003", "p3767-0004", "p3767-0005"}


class PowerModeInfo(BaseModel):
    """One nvpmodel mode as this device's conf defines it."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    online_cpus: list[int] | None


class DeviceInfo(BaseModel):
    """Everything install, doctor and profile need to know about the machine."""

    model_config = ConfigDict(frozen=True)

    root: str
    arch: str
    is_jetson: bool
    status: Literal["supported", "refused", "not-jetson"]
    reason: str  # one line: why refused / what this is
    warnings: list[str]
    l4t: str | None
    jetpack: str | None
    jetpack_exact: bool  # False when the major-version fallback was used
    ubuntu: str | None
    soc: str | None
    module: str | None  # part number, e.g. p3767-0005
    super_variant: bool
    carrier: str | None
    module_name: str | None
    model: str | None  # device-tree model string, for display only (can be wrong, §1.4)
    ram_mb: int | None
    swap_mb: int | None
    python: str  # the system Python (major.minor) TensorRT's bindings are built for
    kernel: str | None
    cuda: str | None
    cudnn: str | None
    tensorrt: str | None
    expected_cuda: str | None
    nvpmodel_conf: str | None  # resolved conf path, relative to root
    power_modes: list[PowerModeInfo]
    default_mode: int | None
    current_mode: int | None
    online_cpus: list[int]
    possible_cpus: list[int]

    @property
    def jetpack_major(self) -> int | None:
        return int(self.jetpack.split(".")[0].split()[0]) if self.jetpack else None

    @property
    def display_name(self) -> str:
        if not self.is_jetson:
            return f"{self.arch} machine (not a Jetson)"
        name = self.module_name or self.model or "unknown Jetson"
        return f"{name}{' Super' if self.super_variant else ''}"

    def mode_name(self, mode_id: int | None) -> str | None:
        return next((m.name for m in self.power_modes if m.id == mode_id), None)


# ----------------------------------------------------------------------------- parsing helpers


def under(root: str | Path, path: str) -> Path:
    """`path` (absolute on the device) inside the tree at `root`."""
    return Path(root) / path.lstrip("/")


def read_text(root: str | Path, path: str) -> str | None:
    """A file's text under `root`, or None when absent or unreadable."""
    try:
        return under(root, path).read_text(errors="replace")
    except OSError:
        return None


@dataclass(frozen=True)
class TegraRelease:
    """The parsed first line of /etc/nv_tegra_release."""

    major: int
    revision: str  # "4.3"
    board: str | None

    @property
    def version(self) -> str:
        parts = self.revision.split(".") + ["0"]
        return f"{self.major}.{parts[0]}.{parts[1]}"


def parse_tegra_release(text: str) -> TegraRelease:
    """Parse `# R36 (release), REVISION: 4.3, GCID: ..., BOARD: generic, ...` (first line only).

    Later lines (KERNEL_VARIANT, TARGET_USERSPACE_LIB_DIR on R36) are ignored, as jetson_stats does.
    """
    first = text.splitlines()[0] if text.strip() else ""
    fields = first.split(", ")
    head = fields[0]
    # jetson-containers refuses anything not shaped "# R<n> (release)"; so do we.
    match = re.fullmatch(r"# R(\d+) \(release\)", head.strip())
    if not match:
        raise UnsupportedDevice(f"cannot parse nv_tegra_release first line: {first[:80]!r}")
    values = dict(f.split(": ", 1) for f in fields[1:] if ": " in f)
    revision = values.get("REVISION", "").strip()
    if not re.fullmatch(r"\d+(\.\d+)?", revision):
        raise UnsupportedDevice(f"nv_tegra_release has no usable REVISION: {first[:80]!r}")
    return TegraRelease(int(match.group(1)), revision, values.get("BOARD"))


def l4t_from_dpkg(root: str | Path) -> str | None:
    """Fallback when nv_tegra_release is missing: nvidia-l4t-core's version, part before '-'."""
    status = read_text(root, "/var/lib/dpkg/status") or ""
    for block in status.split("\n\n"):
        if re.search(r"^Package: nvidia-l4t-core$", block, re.M):
            version = re.search(r"^Version: (\S+)$", block, re.M)
            if version:
                return version.group(1).split("-")[0]
    return None


@dataclass(frozen=True)
class Compatible:
    """The device-tree `compatible` list, reduced to what identifies the hardware."""

    carrier: str | None
    module: str | None
    super_variant: bool
    soc: str | None


def parse_compatible(raw: str) -> Compatible:
    """Parse `nvidia,p3768-0000+p3767-0005-super\\0nvidia,tegra234\\0`.

    Works on the NUL-separated file and on the NUL-stripped form jetson_stats prints (where the
    entries run together), by matching tokens rather than splitting.
    """
    text = raw.replace("\0", " ")
    pair = re.search(r"nvidia,(p\d{4}-\d{4})\+(p\d{4}-\d{4})(-super)?", text)
    if pair:
        carrier, module, super_suffix = pair.group(1), pair.group(2), bool(pair.group(3))
    else:
        alone = re.search(r"nvidia,(p\d{4}-\d{4})(-super)?", text)
        carrier, module = None, alone.group(1) if alone else None
        super_suffix = bool(alone and alone.group(2))
    soc = re.search(r"nvidia,(tegra\d+x?)", text)
    return Compatible(carrier, module, super_suffix, soc.group(1) if soc else None)


def parse_cpu_list(text: str | None) -> list[int]:
    """Parse a sysfs CPU list such as `0-3,6`."""
    cpus: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def format_cpu_list(cpus: list[int]) -> str:
    """The inverse of parse_cpu_list: `[0, 1, 2, 3, 6]` -> `0-3,6`."""
    ranges: list[str] = []
    for cpu in sorted(set(cpus)):
        if ranges and cpu == int(ranges[-1].split("-")[-1]) + 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


def _meminfo_mb(root: str | Path, key: str) -> int | None:
    text = read_text(root, "/proc/meminfo") or ""
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) // 1024 if match else None


def _swap_mb(root: str | Path) -> int | None:
    text = read_text(root, "/proc/swaps")
    if text is None:
        return None
    sizes = [int(line.split()[2]) for line in text.splitlines()[1:] if len(line.split()) >= 3]
    return sum(sizes) // 1024


def _cuda_version(root: str | Path) -> str | None:
    """CUDA from /usr/local/cuda/version.json (cuda_nvcc), else the libcudart.so.X.Y.Z name."""
    text = read_text(root, "/usr/local/cuda/version.json")
    if text:
        try:
            data = json.loads(text)
            version = (data.get("cuda_nvcc") or data.get("cuda") or {}).get("version")
            if version:
                return version
        except ValueError:
            pass
    pattern = str(under(root, "/usr/local/cuda/targets/*/lib/libcudart.so.*.*.*"))
    names = sorted(Path(p).name for p in glob.glob(pattern))
    return names[-1].split("libcudart.so.")[1] if names else None


def _header_version(root: str | Path, candidates: list[str], keys: list[tuple[str, ...]]) -> str | None:
    for path in candidates:
        for match in sorted(glob.glob(str(under(root, path)))):
            text = Path(match).read_text(errors="replace")
            for names in keys:
                values = [re.search(rf"#define\s+{n}\s+(\d+)", text) for n in names]
                if all(values):
                    return ".".join(v.group(1) for v in values if v)
    return None


def _cudnn_version(root: str | Path) -> str | None:
    return _header_version(
        root,
        ["/usr/include/*-linux-gnu/cudnn_version*.h", "/usr/include/cudnn_version*.h"],
        [("CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL")],
    )


def _tensorrt_version(root: str | Path) -> str | None:
    return _header_version(
        root,
        ["/usr/include/*-linux-gnu/NvInferVersion.h", "/usr/include/NvInferVersion.h"],
        # TensorRT 10.x later renamed the macros; accept both spellings.
        [("NV_TENSORRT_MAJOR", "NV_TENSORRT_MINOR", "NV_TENSORRT_PATCH"),
         ("TRT_MAJOR_ENTERPRISE", "TRT_MINOR_ENTERPRISE", "TRT_PATCH_ENTERPRISE")],
    )


def _system_python(root: str | Path, env: Mapping[str, str], real_root: bool) -> str:
    """The distro Python (TensorRT's bindings exist only for it): /usr/bin/python3's target."""
    if env.get(PYTHON_ENV):
        return env[PYTHON_ENV]
    link = under(root, "/usr/bin/python3")
    try:
        target = os.readlink(link)
        match = re.search(r"python(\d+\.\d+)$", target)
        if match:
            return match.group(1)
    except OSError:
        pass
    if real_root:
        return f"{platform.python_version_tuple()[0]}.{platform.python_version_tuple()[1]}"
    return "unknown"


def _arch(root: str | Path, env: Mapping[str, str], release_text: str | None, real_root: bool) -> str:
    if env.get(ARCH_ENV):
        return env[ARCH_ENV]
    if not real_root and release_text:
        # A staged tree describes the target, not this machine: trust the release file's EABI.
        match = re.search(r"EABI: (\w+)", release_text)
        if match:
            return match.group(1)
    return platform.machine()


# ----------------------------------------------------------------------------- detection


def resolve_root(root: str | Path | None, env: Mapping[str, str] | None = None) -> str:
    """The root to inspect: the argument, else $TINYVLA_EDGE_ROOT, else '/'."""
    env = os.environ if env is None else env
    return str(root if root is not None else env.get(ROOT_ENV) or "/")


def detect(root: str | Path | None = None, env: Mapping[str, str] | None = None) -> DeviceInfo:
    """Describe the machine whose filesystem is at `root` (reference §8 item 1).

    Never raises for an unsupported or non-Jetson machine: the result says so in `status` and
    `reason`; callers that need a supported Jetson call `require_supported`.
    """
    env = os.environ if env is None else env
    root = resolve_root(root, env)
    real_root = Path(root).resolve() == Path("/")
    warnings: list[str] = []

    release_text = read_text(root, "/etc/nv_tegra_release")
    arch = _arch(root, env, release_text, real_root)
    l4t = env.get(L4T_ENV)
    if not l4t and release_text:
        # BOARD is deliberately ignored: t186ref/generic says nothing reliable (§1.1).
        l4t = parse_tegra_release(release_text).version
    if not l4t:
        l4t = l4t_from_dpkg(root)

    compatible = parse_compatible(
        read_text(root, "/proc/device-tree/compatible")
        or read_text(root, "/sys/firmware/devicetree/base/compatible")
        or ""
    )
    model = (read_text(root, "/proc/device-tree/model")
             or read_text(root, "/sys/firmware/devicetree/base/model") or "").replace("\0", "").strip() or None
    is_tegra_soc = compatible.soc is not None and compatible.soc.startswith("tegra")
    is_jetson = arch == "aarch64" and l4t is not None and (is_tegra_soc or compatible.soc is None)

    jetpack, jetpack_exact, line = None, False, None
    if l4t:
        major = int(l4t.split(".")[0])
        line = RELEASE_BY_L4T_MAJOR.get(major)
        jetpack = JETPACK_BY_L4T.get(l4t)
        jetpack_exact = jetpack is not None
        if jetpack is None and line is not None:
            jetpack = f"{line.jetpack}.x" if line.jetpack.count(".") == 0 else line.jetpack
            warnings.append(
                f"L4T {l4t} is not in the JetPack table: assuming JetPack {jetpack} from R{major}; "
                "update tinyvla-edge if this release is newer"
            )

    facts = MODULES.get(compatible.module or "")
    if is_jetson and compatible.module and facts is None:
        warnings.append(f"module {compatible.module} is not in the module table: RAM and cores are read from the system")

    conf: NvpmodelConf | None = read_conf(root) if is_jetson else None
    conf_path = conf.path if conf else None
    if is_jetson and conf is None:
        warnings.append("no /etc/nvpmodel.conf: power modes cannot be read or set")
    if conf and facts and facts.nvpmodel_conf:
        expected = facts.nvpmodel_conf + ("_super" if compatible.super_variant and compatible.module in SUPER_CONFS else "")
        if conf_path and Path(conf_path).stem.startswith("nvpmodel_") and Path(conf_path).stem != expected:
            warnings.append(f"/etc/nvpmodel.conf points at {Path(conf_path).name}, expected {expected}.conf for this module")

    current = read_status(root) if is_jetson else None
    stack = expected_stack(jetpack) if jetpack else None

    status: Literal["supported", "refused", "not-jetson"]
    if not is_jetson:
        status = "not-jetson"
        why = ("no /etc/nv_tegra_release" if l4t is None else
               "L4T files on a non-aarch64 machine" if arch != "aarch64" else "no Tegra SoC in the device tree")
        reason = f"not a Jetson ({arch}, {why})"
    elif line is None:
        status, reason = "refused", (
            f"L4T {l4t} (R{l4t.split('.')[0]}) is not a release tinyvla-edge knows: supported are "
            "JetPack 6.x (R36) and 7.x (R38/R39); update tinyvla-edge or reflash a supported JetPack"
        )
    elif not line.supported:
        status, reason = "refused", (
            f"JetPack {jetpack} (L4T {l4t}) is not supported: it ships Python {line.python} and TensorRT's "
            "bindings exist only for that Python, while tinyvla-edge needs Python >= 3.10; reflash with "
            "JetPack 6.2 or newer (SDK Manager or the SD-card image), then run jetson_setup.sh"
        )
    else:
        status = "supported"
        reason = f"JetPack {jetpack} (L4T {l4t}), Python {line.python}"

    ram_mb = _meminfo_mb(root, "MemTotal")
    if ram_mb is None and facts and facts.ram_gb:
        ram_mb = facts.ram_gb * 1024

    return DeviceInfo(
        root=root,
        arch=arch,
        is_jetson=is_jetson,
        status=status,
        reason=reason,
        warnings=warnings,
        l4t=l4t,
        jetpack=jetpack,
        jetpack_exact=jetpack_exact,
        ubuntu=line.ubuntu if line else None,
        soc=compatible.soc,
        module=compatible.module,
        super_variant=compatible.super_variant,
        carrier=compatible.carrier,
        module_name=facts.name if facts else None,
        model=model,
        ram_mb=ram_mb,
        swap_mb=_swap_mb(root),
        python=_system_python(root, env, real_root),
        kernel=(read_text(root, "/proc/sys/kernel/osrelease") or "").strip() or (platform.release() if real_root else None),
        cuda=_cuda_version(root) if is_jetson or real_root else None,
        cudnn=_cudnn_version(root) if is_jetson or real_root else None,
        tensorrt=_tensorrt_version(root) if is_jetson or real_root else None,
        expected_cuda=stack.cuda if stack else None,
        nvpmodel_conf=conf_path,
        power_modes=[PowerModeInfo(id=m.id, name=m.name, online_cpus=list(m.online_cpus) if m.online_cpus else None)
                     for m in (conf.modes if conf else ())],
        default_mode=conf.default_id if conf else None,
        current_mode=current if current is not None else (conf.default_id if conf else None),
        online_cpus=parse_cpu_list(read_text(root, "/sys/devices/system/cpu/online")),
        possible_cpus=parse_cpu_list(read_text(root, "/sys/devices/system/cpu/possible")),
    )


def require_supported(info: DeviceInfo) -> DeviceInfo:
    """Raise UnsupportedDevice with the reason unless `info` is a supported Jetson."""
    if info.status != "supported":
        raise UnsupportedDevice(info.reason)
    return info


def cuda_tag(info: DeviceInfo) -> str | None:
    """`cu126` from the installed CUDA (or the JetPack's expected CUDA when it is not installed)."""
    version = info.cuda or info.expected_cuda
    if not version:
        return None
    major, minor = version.split(".")[:2]
    return f"cu{major}{minor}"


def wheel_platform(info: DeviceInfo) -> str | None:
    """The community index platform: `jp6` on JetPack 6, `sbsa` on JetPack 7 (reference §4.1)."""
    major = info.jetpack_major
    if major is None:
        return None
    return "sbsa" if major >= 7 else f"jp{major}"
