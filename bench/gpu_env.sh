# Sourced by bench/gpu_check*.sh on a GPU machine without network access: installs the prepared
# wheels (.whl/, bench/prepare_gpu.sh) whose distribution is missing, then mfphys itself, and checks
# that mfphys and CuPy import. Uses $PY, $SITE and $OUT; exports PYTHONPATH where it installs.
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
