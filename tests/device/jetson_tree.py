"""Build staged Jetson root trees from the reference's real sample files.

Each tree is what the device itself would show: /etc/nv_tegra_release (verbatim lines),
device-tree compatible (NUL-separated) and model, the nvpmodel conf behind the nvpower.sh
symlink, /proc/meminfo and /proc/swaps, CUDA/cuDNN/TensorRT version files, a sysfs CPU and GPU
tree for the conf's DEFAULT mode, and a small Ubuntu userland (passwd, group, dpkg status).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jetson"
EMULATOR_BIN = FIXTURES / "bin"


@dataclass(frozen=True)
class DeviceSpec:
    key: str
    release: str | None  # file in fixtures/jetson/nv_tegra_release
    compatible: bytes
    model: str
    conf: str | None  # file in fixtures/jetson/nvpmodel
    conf_symlink: bool
    python: str
    kernel: str
    ram_mb: int
    zram_mb: int
    cpus: int
    cuda: str | None
    cudnn: str | None
    tensorrt: str | None
    cuda_target: str = "aarch64-linux"
    rt_group_sched: bool = False
    l4t_core: str = ""
    status_mode: int | None = None  # /var/lib/nvpmodel/status; None: the conf DEFAULT applies
    extra_packages: tuple[str, ...] = ("brltty", "modemmanager")
    modemmanager_enabled: bool = True
    profile: str = ""  # the shipped profile for this device
    notes: dict = field(default_factory=dict)


ORIN_NANO_SUPER_JP62 = DeviceSpec(
    key="orin-nano-8gb-super-jp6.2", release="R36.4.3",
    compatible=(FIXTURES / "device-tree/compatible-orin-nano-super").read_bytes(),
    model="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
    conf="nvpmodel_p3767_0003_super.conf", conf_symlink=True, python="3.10", kernel="5.15.148-tegra",
    ram_mb=7620, zram_mb=3810, cpus=6, cuda="12.6.68", cudnn="9.3.0", tensorrt="10.3.0",
    l4t_core="36.4.3-20250107174145", status_mode=2, profile="orin-nano-8gb",
)
ORIN_NX_16GB_JP61 = DeviceSpec(
    key="orin-nx-16gb-jp6.1", release="R36.4.0",
    compatible=b"nvidia,p3768-0000+p3767-0000\0nvidia,p3767-0000\0nvidia,tegra234\0",
    model="NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
    conf="nvpmodel_p3767_0000.conf", conf_symlink=True, python="3.10", kernel="5.15.148-tegra",
    ram_mb=15655, zram_mb=7827, cpus=8, cuda="12.6.68", cudnn="9.3.0", tensorrt="10.3.0",
    l4t_core="36.4.0-20240912212859", profile="orin-nx-16gb",
)
AGX_ORIN_64GB_JP621 = DeviceSpec(
    key="agx-orin-64gb-jp6.2.1", release="R36.4.4",
    compatible=b"nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0",
    model="NVIDIA Jetson AGX Orin Developer Kit",
    conf="nvpmodel_p3701_0000.conf", conf_symlink=True, python="3.10", kernel="5.15.148-tegra",
    ram_mb=62841, zram_mb=31420, cpus=12, cuda="12.6.68", cudnn="9.3.0", tensorrt="10.3.0",
    l4t_core="36.4.4-20250616085344", profile="agx-orin-64gb",
)
AGX_THOR_JP70 = DeviceSpec(
    key="agx-thor-jp7.0", release="R38.2.0",
    compatible=b"nvidia,p4071-0000+p3834-0008\0nvidia,p3834-0008\0nvidia,tegra264\0",
    model="NVIDIA Jetson AGX Thor Developer Kit",
    conf="nvpmodel_thor.conf", conf_symlink=False, python="3.12", kernel="6.8.12-tegra",
    ram_mb=125772, zram_mb=0, cpus=14, cuda="13.0.48", cudnn="9.12.0", tensorrt="10.13.3",
    cuda_target="sbsa-linux", l4t_core="38.2.0-20250821174705", status_mode=1, profile="thor",
)
AGX_ORIN_JP512 = DeviceSpec(
    key="agx-orin-64gb-jp5.1.2", release="R35.4.1",
    compatible=b"nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0",
    model="NVIDIA Jetson AGX Orin Developer Kit",
    conf="nvpmodel_p3701_0000.conf", conf_symlink=True, python="3.8", kernel="5.10.120-tegra",
    ram_mb=62795, zram_mb=31398, cpus=12, cuda="11.4.315", cudnn="8.6.0", tensorrt="8.5.2",
    rt_group_sched=True, l4t_core="35.4.1-20230801124926", profile="agx-orin-64gb",
)
X86_DEV_BOX = DeviceSpec(
    key="x86-dev-box", release=None, compatible=b"", model="", conf=None, conf_symlink=False, python="3.11",
    kernel="6.8.0-45-generic", ram_mb=31900, zram_mb=0, cpus=8, cuda=None, cudnn=None, tensorrt=None,
    profile="cpu-dev",
)
SUPPORTED = (ORIN_NANO_SUPER_JP62, ORIN_NX_16GB_JP61, AGX_ORIN_64GB_JP621, AGX_THOR_JP70)


def _write(root: Path, path: str, content: str | bytes) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    return target


def _cpu_list(cpus: list[int]) -> str:
    return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])


def _default_online(spec: DeviceSpec) -> list[int]:
    """Online CPUs under the mode the status file (or DEFAULT) selects, read from the conf."""
    from edge.device.nvpmodel import parse_conf

    if spec.conf is None:
        return list(range(spec.cpus))
    conf = parse_conf((FIXTURES / "nvpmodel" / spec.conf).read_text())
    mode = conf.by_id(spec.status_mode if spec.status_mode is not None else conf.default_id)
    return list(mode.online_cpus) if mode and mode.online_cpus else list(range(spec.cpus))


DPKG_ENTRY = "Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: {arch}\nVersion: {version}\n"


def build_tree(root: Path, spec: DeviceSpec) -> Path:
    """Create the staged root for `spec` under `root` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    jetson = spec.release is not None
    if jetson:
        shutil.copy(FIXTURES / "nv_tegra_release" / spec.release, _write(root, "/etc/nv_tegra_release", ""))
        _write(root, "/proc/device-tree/compatible", spec.compatible)
        _write(root, "/proc/device-tree/model", spec.model.encode() + b"\0")
    if spec.conf:
        conf_text = (FIXTURES / "nvpmodel" / spec.conf).read_text()
        if spec.conf_symlink:
            _write(root, f"/etc/nvpmodel/{spec.conf}", conf_text)
            os.symlink(f"/etc/nvpmodel/{spec.conf}", root / "etc/nvpmodel.conf")
        else:
            _write(root, "/etc/nvpmodel.conf", conf_text)
    if spec.status_mode is not None:
        _write(root, "/var/lib/nvpmodel/status", f"pmode:{spec.status_mode:04d} fmode:quiet\n")

    _write(root, "/proc/meminfo", f"MemTotal:       {spec.ram_mb * 1024} kB\nMemFree:         1048576 kB\n")
    swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    zram_devices = spec.cpus if spec.zram_mb else 0
    for i in range(zram_devices):
        swaps += f"/dev/zram{i}                              partition\t{spec.zram_mb * 1024 // zram_devices}\t\t0\t\t5\n"
    _write(root, "/proc/swaps", swaps)
    _write(root, "/proc/sys/kernel/osrelease", spec.kernel + "\n")
    rt = "CONFIG_RT_GROUP_SCHED=y\n" if spec.rt_group_sched else "# CONFIG_RT_GROUP_SCHED is not set\n"
    _write(root, f"/boot/config-{spec.kernel}", "CONFIG_PREEMPT=y\nCONFIG_CGROUP_SCHED=y\n" + rt)

    online = _default_online(spec)
    _write(root, "/sys/devices/system/cpu/possible", _cpu_list(list(range(spec.cpus))) + "\n")
    _write(root, "/sys/devices/system/cpu/present", _cpu_list(list(range(spec.cpus))) + "\n")
    _write(root, "/sys/devices/system/cpu/online", _cpu_list(online) + "\n")
    for cpu in range(spec.cpus):
        _write(root, f"/sys/devices/system/cpu/cpu{cpu}/online", f"{int(cpu in online)}\n")
        base = f"/sys/devices/system/cpu/cpu{cpu}/cpufreq"
        for name, value in (("scaling_min_freq", 729600), ("scaling_max_freq", 1728000),
                            ("cpuinfo_min_freq", 115200), ("cpuinfo_max_freq", 1728000),
                            ("scaling_governor", "schedutil")):
            _write(root, f"{base}/{name}", f"{value}\n")
    if jetson and spec.cuda_target == "aarch64-linux":
        for name, value in (("min_freq", 306000000), ("max_freq", 1020000000), ("cur_freq", 306000000)):
            _write(root, f"/sys/class/devfreq/17000000.gpu/{name}", f"{value}\n")

    if spec.cuda:
        major, minor, patch = spec.cuda.split(".")
        _write(root, "/usr/local/cuda/version.json",
               '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "%s.%s.0"\n   },\n'
               '   "cuda_nvcc" : {\n      "name" : "CUDA NVCC",\n      "version" : "%s"\n   }\n}\n'
               % (major, minor, spec.cuda))
        _write(root, f"/usr/local/cuda/targets/{spec.cuda_target}/lib/libcudart.so.{spec.cuda}", b"")
    if spec.cudnn:
        a, b, c = spec.cudnn.split(".")
        _write(root, f"/usr/include/aarch64-linux-gnu/cudnn_version_v{a}.h",
               f"#define CUDNN_MAJOR {a}\n#define CUDNN_MINOR {b}\n#define CUDNN_PATCHLEVEL {c}\n")
    if spec.tensorrt:
        a, b, c = spec.tensorrt.split(".")
        _write(root, "/usr/include/aarch64-linux-gnu/NvInferVersion.h",
               f"#define NV_TENSORRT_MAJOR {a} //!< TensorRT major version.\n"
               f"#define NV_TENSORRT_MINOR {b} //!< TensorRT minor version.\n"
               f"#define NV_TENSORRT_PATCH {c} //!< TensorRT patch version.\n")

    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    os.symlink(f"python{spec.python}", root / "usr/bin/python3")
    _write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
                                "robot:x:1000:1000:Robot operator:/home/robot:/bin/bash\n")
    _write(root, "/etc/group", "root:x:0:\nadm:x:4:robot\ndialout:x:20:\nvideo:x:44:\nplugdev:x:46:\n"
                               "sudo:x:27:robot\nrobot:x:1000:\n")
    (root / "home/robot").mkdir(parents=True, exist_ok=True)
    _write(root, "/etc/fstab", "/dev/root            /                     ext4           defaults                                     0 1\n")
    arch = "arm64" if jetson else "amd64"
    packages = [("python3", "3.10.6-1~22.04.1"), (f"python{spec.python}", spec.python + ".12-1"),
                ("libusb-1.0-0", "2:1.0.25-1ubuntu2")]
    if spec.l4t_core:
        packages.append(("nvidia-l4t-core", spec.l4t_core))
    packages += [(name, "1.0") for name in spec.extra_packages]
    _write(root, "/var/lib/dpkg/status", "\n".join(DPKG_ENTRY.format(name=n, arch=arch, version=v)
                                                   for n, v in packages))
    if spec.modemmanager_enabled:
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        os.symlink("/lib/systemd/system/ModemManager.service", wants / "ModemManager.service")
    return root


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes (and every symlink's target) under `root`, for byte-identity checks."""
    result: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            result[rel] = path.read_bytes()
        else:
            result[rel] = "<dir>"
    return result


def emulator_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment with the nvpmodel/jetson_clocks emulators first on PATH, acting on `root`."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(EMULATOR_BIN), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["JETSON_EMU_ROOT"] = str(root)
    env.update(extra)
    return env
