#!/usr/bin/env bash
# Builds the Kubernetes programs the deploy tests run against the manifests, once per version,
# under $T2V_CACHE/kube-tools/<name>-<version>-<recipe>/ (a warm run only checks they are
# there):
#   kube-apiserver  k8s.io/kubernetes, through the wrapper module scripts/kube-tools
#   kine            etcd's API on SQLite, so the API server needs no etcd
#   webhooks        Knative Serving's and Eventing's admission webhooks, through the wrapper
#                   modules scripts/kube-tools/{serving,eventing}-webhook, each with the
#                   ConfigMaps it reads, copied from the same module version
#   scripts/build_kube_tools.sh [kube-apiserver|kine|webhooks]...   (default: all)
# Prints NAME=PATH for each program built or found; each build's output goes to a log beside
# them, whose end is printed when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
KINE_VERSION=v0.17.5
TOOLS="$T2V_CACHE/kube-tools"
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
# A Go older than a module's go line fetches the one it names through the module proxy.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export GOMODCACHE="${GOMODCACHE:-$T2V_CACHE/go/mod}" GOCACHE="${GOCACHE:-$T2V_CACHE/go/build}"
export GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"
# Builds take turns with whatever else runs on the machine.
renice -n 10 -p $$ >/dev/null
# Part of each program's folder name: a change to how they are built builds them again (the Go
# build cache keeps that short).
RECIPE="$(cat scripts/build_kube_tools.sh $(find scripts/kube-tools -type f | sort) | sha256sum | cut -c1-10)"
mkdir -p "$TOOLS"
# One build at a time, also across test sessions started together.
exec 9>"$TOOLS/.lock"
flock 9

# install NAME VERSION BINARY COMMAND...: run COMMAND with $OUT set to a scratch folder that must
# end up holding BINARY, then move that folder into place, so a failed build leaves nothing.
install() {
  local name="$1" version="$2" binary="$3"
  shift 3
  local dest="$TOOLS/$name-$version-$RECIPE"
  if [ ! -x "$dest/$binary" ]; then
    echo "== building $name $version" >&2
    local start=$SECONDS
    OUT="$(mktemp -d "$TOOLS/.build-$name.XXXXXX")"
    export OUT
    local log="$TOOLS/$name-$version.log"
    if ! "$@" >"$log" 2>&1 || [ ! -x "$OUT/$binary" ]; then
      tail -n 40 "$log" >&2
      echo "$name $version: the build failed (whole log: $log)" >&2
      rm -rf "$OUT"
      exit 1
    fi
    rm -rf "$dest"
    mv "$OUT" "$dest"
    # Builds of other versions or recipes: each program is over 100 MB.
    find "$TOOLS" -maxdepth 1 -type d -name "$name-v*" ! -path "$dest" -exec rm -rf {} +
    echo "== $name $version built in $((SECONDS - start)) s" >&2
  fi
  echo "$name=$dest/$binary"
}

# The version of MODULE that the wrapper module in folder WRAPPER builds.
wrapped_version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

# The version the server reports (clients such as Knative's check it); a build from the module
# proxy has no git metadata to take it from.
build_apiserver() {
  local version="$1" minor
  minor="$(echo "$version" | cut -d. -f2)"
  local v=k8s.io/component-base/version
  (cd scripts/kube-tools && go build -o "$OUT/kube-apiserver" \
    -ldflags "-X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver)
}

build_kine() {
  GOBIN="$OUT" go install "github.com/k3s-io/kine@$KINE_VERSION"
}

# build_webhook NAME MODULE VERSION: MODULE's cmd/webhook through the wrapper module
# scripts/kube-tools/NAME, with the ConfigMaps it reads (in a cluster, Knative's release YAML
# creates them).
build_webhook() {
  (cd "scripts/kube-tools/$1" && go build -o "$OUT/webhook" "$2/cmd/webhook")
  cp -r "$(go env GOMODCACHE)/$2@$3/config/core/configmaps" "$OUT/configmaps"
  chmod -R u+w "$OUT/configmaps"  # the module cache is read-only
}

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(kube-apiserver kine webhooks)
for target in "${targets[@]}"; do
  case "$target" in
    kube-apiserver)
      version="$(wrapped_version scripts/kube-tools k8s.io/kubernetes)"
      install kube-apiserver "$version" kube-apiserver build_apiserver "$version"
      ;;
    kine) install kine "$KINE_VERSION" kine build_kine ;;
    webhooks)
      for name in serving eventing; do
        module="knative.dev/$name"
        version="$(wrapped_version "scripts/kube-tools/$name-webhook" "$module")"
        install "$name-webhook" "$version" webhook build_webhook "$name-webhook" "$module" "$version"
      done
      ;;
    *) echo "unknown target $target (kube-apiserver, kine or webhooks)" >&2; exit 2 ;;
  esac
done
