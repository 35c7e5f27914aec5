# Sourced by bench/gpu_check*.sh on a GPU machine without network access (bench/README.md): defines
#   gpu_setup SCRIPT ARGS...  the flags --fake (the CuPy emulation of tests/fake_cupy, on a CPU) and
#                             --small; sets FAKE, SMALL, OUT (default /tmp/mfphys-gpu), PY, SITE and
#                             the environment (MNIST in .gpu/mnist unless MFPHYS_DATA_DIR is set)
#   gpu_install               installs the prepared wheels (.whl/, bench/prepare_gpu.sh) whose
#                             distribution is missing, then mfphys itself, and checks that mfphys and
#                             CuPy import (exports PYTHONPATH where it installs)

gpu_setup() {
  local script=$1; shift
  FAKE=0; SMALL=0
  for a in "$@"; do
    case $a in
      --fake) FAKE=1 ;;
      --small) SMALL=1 ;;
      *) echo "error: unknown argument $a (usage: OUT=DIR bash $script [--fake] [--small])" >&2; exit 2 ;;
    esac
  done
  OUT=${OUT:-/tmp/mfphys-gpu}; mkdir -p "$OUT"
  PY=${PYTHON:-python3}
  SITE=${SITE:-/tmp/mfphys-site}; mkdir -p "$SITE"
  export PYTHONUNBUFFERED=1 MFPHYS_DATA_DIR=${MFPHYS_DATA_DIR:-$PWD/.gpu/mnist}
  if [ "$FAKE" = 1 ]; then
    export MFPHYS_FAKE_CUPY=1 PYTHONPATH=$PWD/tests/fake_cupy${PYTHONPATH:+:$PYTHONPATH}
  fi
}

gpu_install() {
  echo "== install (no network)"
  # only the prepared wheels whose distribution is missing here (the image's NumPy/CuPy stay)
  missing=$($PY - <<'PYEOF'
import glob, importlib.metadata as md
for f in sorted(glob.glob(".whl/*.whl")):
    name = f.split("/")[-1].split("-")[0]
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        print(f)
PYEOF
  )
  if [ -n "$missing" ]; then
    echo "installing into $SITE:" $missing
    $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" $missing
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
  fi
  # mfphys itself: the installed package maps cli/ to mfphys.cli (pyproject.toml). Built with the
  # prepared setuptools wheel, else with the image's setuptools; where neither can (an old
  # setuptools without `wheel`), the same layout is assembled by hand
  if ! $PY -m pip install -q --no-index --find-links .whl --no-deps -e . 2>"$OUT/install.err" \
     && ! $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>>"$OUT/install.err"; then
    echo "pip install -e . failed ($(tail -1 "$OUT/install.err")): assembling mfphys + cli by hand"
    rm -rf /tmp/mfphys-src && mkdir -p /tmp/mfphys-src && cp -r mfphys /tmp/mfphys-src/ && cp -r cli /tmp/mfphys-src/mfphys/cli
    export PYTHONPATH=/tmp/mfphys-src${PYTHONPATH:+:$PYTHONPATH}
  fi
  $PY -c "import sys, numpy, cupy, mfphys, mfphys.cli.main, mfphys.backend as b
print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__, 'mfphys', mfphys.__version__)
print('gpu_status', b.gpu_status())" || { echo "FAILED: mfphys or CuPy cannot be imported"; exit 1; }
}
