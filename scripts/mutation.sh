#!/usr/bin/env bash
# Mutation testing of the core modules, run by hand (not in CI's run): mutmut mutates one
# module at a time and runs, for each mutant, the tests of that module's selection that
# cover the mutated function; cargo-mutants does the same for rust_infer.
#
#   scripts/mutation.sh                   every Python module below
#   scripts/mutation.sh jobs recovery     only these
#   scripts/mutation.sh rust              rust_infer (needs `cargo install cargo-mutants --locked`;
#                                         RUST_MUTATE="src/contract.rs" for some files only)
#
# Each module runs in a copy of the tree of its own under $MUTATION_DIR (default
# $T2V_CACHE/mutation/<module>), so its test selection is its own config. The score is
# printed per module; to see a survivor: `cd $MUTATION_DIR/<module> && mutmut show <name>`.
# TESTING.md has the last scores and why each survivor is left.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/env.sh
source scripts/env.sh
export PATH="$T2V_VENV/bin:$PATH"
MUTATION_DIR="${MUTATION_DIR:-$T2V_CACHE/mutation}"
CHILDREN="${MUTATION_CHILDREN:-2}"

# module -> "what to mutate (mutmut globs)|the tests that cover it"
declare -A MODULES=(
  [jobs]="t2v/jobs.py|tests/test_jobs.py tests/unit/test_job_rules.py tests/unit/test_auth_rules.py"
  [contract]="t2v/contract.py|tests/unit/test_request_rules.py tests/unit/test_auth_rules.py"
  [auth]="t2v/auth.py|tests/test_auth.py tests/unit/test_request_rules.py tests/unit/test_auth_rules.py"
  [recovery]="t2v/recovery.py|tests/unit/test_recovery.py"
  [store]="t2v/store/core.py|tests/unit/test_store_core.py tests/contracts/test_job_store.py"
  [worker]="t2v/worker/*|tests/worker"
)
ORDER=(jobs contract auth recovery store worker)

python_module() {
  local name=$1 spec=${MODULES[$1]}
  local mutate=${spec%%|*} tests=${spec#*|} dir="$MUTATION_DIR/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  cp -r t2v functions tests "$dir/"
  find "$dir" -name __pycache__ -prune -exec rm -rf {} +
  {
    cat pyproject.toml
    echo
    echo "[tool.mutmut]"
    echo 'source_paths = ["t2v"]'
    echo "only_mutate = [\"$mutate\"]"
    echo 'also_copy = ["tests", "functions"]'
    printf 'pytest_add_cli_args_test_selection = [%s]\n' "$(printf '"%s", ' $tests)"
    echo 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]'
  } > "$dir/pyproject.toml"
  # rust_infer is not mutated here: its Python package and extension come from the tree.
  (cd "$dir" && PYTHONPATH="$ROOT/rust_infer/python" mutmut run --max-children "$CHILDREN" \
    > mutmut.log 2>&1 || { tail -20 mutmut.log; return 1; })
  (cd "$dir" && mutmut results --all true > results.txt 2>&1 || true)
  local total killed
  total=$(grep -c ': ' "$dir/results.txt" || true)
  killed=$(grep -c ': killed' "$dir/results.txt" || true)
  echo "$name: $killed of $total mutants killed ($mutate; tests: $tests)"
  grep -v ': killed' "$dir/results.txt" | sed 's/^/  /' || true
}

rust() {
  if ! cargo mutants --version > /dev/null 2>&1; then
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    return 1
  fi
  # About 1,200 mutants, each a build and `cargo test`: hours. RUST_MUTATE narrows it to
  # files (cargo-mutants' --file globs), e.g. RUST_MUTATE="src/contract.rs src/supervise.rs".
  local files=()
  for file in ${RUST_MUTATE:-}; do files+=(--file "$file"); done
  (cd rust_infer && PYO3_PYTHON="$T2V_VENV/bin/python" cargo mutants -C --locked \
    --output "$MUTATION_DIR/rust" -j "$CHILDREN" "${files[@]}") || true
  local out="$MUTATION_DIR/rust/mutants.out"
  for kind in caught missed timeout unviable; do
    echo "rust_infer $kind: $(wc -l < "$out/$kind.txt" 2> /dev/null || echo 0)"
  done
  sed 's/^/  missed: /' "$out/missed.txt" 2> /dev/null || true
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ORDER[@]}")
for name in "${names[@]}"; do
  if [ "$name" = rust ]; then
    rust
  elif [ -n "${MODULES[$name]:-}" ]; then
    python_module "$name"
  else
    echo "unknown module $name (one of: ${ORDER[*]} rust)" >&2
    exit 2
  fi
done
