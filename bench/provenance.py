"""Where and when a benchmark ran: the device (nvidia-smi's name), torch / CUDA / cuDNN, the date.

One sentence for the head of a README table, and the same facts as a dict for a JSON record.
"""

import datetime
import os
import shutil
import subprocess

import torch


def _nvidia_smi(index: int):
    """(name, driver version) of GPU `index` from nvidia-smi, or None where it cannot say."""
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader",
                           "-i", str(index)], capture_output=True, text=True)
    parts = [p.strip() for p in done.stdout.strip().split(",")]
    return (parts[0], parts[1]) if done.returncode == 0 and len(parts) == 2 else None


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU"


def facts(device: torch.device) -> dict:
    """The device and software a benchmark ran on, and today's date."""
    out = {"date": datetime.date.today().isoformat(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None}
    if device.type == "cuda":
        index = device.index or 0
        smi = _nvidia_smi(index)
        out["device"] = smi[0] if smi else torch.cuda.get_device_name(device)
        out["driver"] = smi[1] if smi else None
        out["memory_mib"] = torch.cuda.get_device_properties(device).total_memory // 2**20
    else:
        out["device"] = f"{_cpu_name()} ({os.cpu_count()} cores)"
    return out


def sentence(f: dict) -> str:
    """'Measured 2025-01-31 on NVIDIA H200 (driver …, 143771 MiB), torch 2.11.0+cu130 (CUDA 13.0, cuDNN 91300).'"""
    extra = [f"driver {f['driver']}"] if f.get("driver") else []
    if f.get("memory_mib"):
        extra.append(f"{f['memory_mib']} MiB")
    where = f"{f['device']}{' (' + ', '.join(extra) + ')' if extra else ''}"
    sw = [f"CUDA {f['cuda']}"] if f.get("cuda") else ["CPU build"]
    if f.get("cudnn") and f.get("cuda"):
        sw.append(f"cuDNN {f['cudnn']}")
    return f"Measured {f['date']} on {where}, torch {f['torch']} ({', '.join(sw)})."
