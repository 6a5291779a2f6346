"""Write requirements.lock from `pip freeze` of an environment built from requirements.in.

Used by `make lock`. CUDA runtime wheels that PyTorch pulls in only on Linux get a platform marker so
the lock also installs on macOS and Windows.
"""

import re
import subprocess
import sys

LINUX_ONLY = re.compile(r"^(nvidia-|cuda-|triton==)", re.I)
SKIP = re.compile(r"^(-e |automix[-_]lite|dasp-pytorch|pedalboard|torchcomp|torchlpc)", re.I)

python = sys.argv[1]
frozen = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout
lines = ["# Exact pins installed by `make` and CI. Regenerate with `make lock` (from requirements.in)."]
for line in sorted(frozen.splitlines(), key=str.lower):
    if not line or SKIP.match(line) or line.startswith(("pip==", "wheel==")):
        continue
    lines.append(line + ('; sys_platform == "linux"' if LINUX_ONLY.match(line) else ""))
open("requirements.lock", "w").write("\n".join(lines) + "\n")
print(f"wrote requirements.lock with {len(lines) - 1} pins")
