#!/usr/bin/env bash
# Installs what the local Sluice stack and build need, only what is missing, and
# says what it did. Safe to re-run: with everything present it changes nothing.
#
# Usage: deploy/install.sh [apt|tansu|chdb|schemathesis|kubernetes|sdks|browser|prometheus|zookeeper]
#   (no argument)  what the local stack needs: apt and tansu
#   apt            only the Debian packages
#   tansu          only the tansu broker (cargo install, ~20 minutes on 2 cores)
#   chdb           only the tests' second ClickHouse engine: a virtualenv with the
#                  pinned testkit/chdb-fixture/requirements.txt (~900 MB, ~1 minute)
#   schemathesis   only the OpenAPI conformance checker of deploy/dev.sh conformance: a
#                  virtualenv with the pinned deploy/conformance/requirements.txt
#                  (~60 MB, ~20 s)
#   kubernetes     only the manifest checker of deploy/kubernetes/validate.sh: a
#                  virtualenv with the pinned deploy/kubernetes/requirements.txt
#   sdks           only the third-party SDKs of deploy/dev.sh sdk-check: node and npm
#                  (apt, when missing), and the versions pinned in deploy/sdk-check/
#                  in a virtualenv and a node_modules (~30 MB, ~30 s)
#   browser        only the browser tests' Debian chromium (apt, when missing) and the
#                  playwright-core pinned in deploy/browser/package.json
#   prometheus     only Prometheus and promtool (Debian's prometheus package, apt,
#                  when missing) for the alert rules of deploy/prometheus/ and
#                  their test (testkit/tests/prometheus.rs)
#   zookeeper      only ZooKeeper 3.8 and the Java runtime it needs (Debian's
#                  zookeeper package, apt, when missing) for the local ClickHouse
#                  cluster (sluice-dev cluster, devstack/tests/cluster.rs)
set -euo pipefail

# ClickHouse 18.16 server and client (Debian's), cmake + g++ + pkg-config and
# the OpenSSL, libcurl and zlib headers for rdkafka's bundled librdkafka
# (cmake-build with TLS, SASL and OIDC), curl for the stack script's health
# checks; stunnel4 and openssl for the tests' TLS broker (testkit's
# SecureBroker: tansu 0.6.0 cannot serve TLS itself).
APT_PACKAGES=(clickhouse-server clickhouse-client cmake libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config g++ curl stunnel4 openssl)
TANSU_VERSION=0.6.0
# dynostore+libsql gives the sqlite storage engine without the postgres/S3 extras.
TANSU_INSTALL=(cargo install tansu --version "$TANSU_VERSION" --locked --no-default-features --features "dynostore,libsql")
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Outside the work tree, so that every checkout and CI run on the machine shares it.
CHDB_VENV=${SLUICE_CHDB_VENV:-$HOME/.cache/sluice/chdb-venv}
CHDB_REQUIREMENTS=$ROOT/testkit/chdb-fixture/requirements.txt
SCHEMATHESIS_VENV=${SLUICE_SCHEMATHESIS_VENV:-$HOME/.cache/sluice/schemathesis-venv}
SCHEMATHESIS_REQUIREMENTS=$ROOT/deploy/conformance/requirements.txt
KUBERNETES_VALIDATE_VENV=${SLUICE_KUBERNETES_VALIDATE_VENV:-$HOME/.cache/sluice/kubernetes-validate-venv}
KUBERNETES_VALIDATE_REQUIREMENTS=$ROOT/deploy/kubernetes/requirements.txt
SDK_CHECK_CACHE=${SLUICE_SDK_CHECK_CACHE:-$HOME/.cache/sluice/sdk-check}
SDK_CHECK_PINS=$ROOT/deploy/sdk-check
BROWSER_CACHE=${SLUICE_BROWSER_CACHE:-$HOME/.cache/sluice/browser}

log() { printf 'install: %s\n' "$*"; }
die() {
    printf 'install: error: %s\n' "$*" >&2
    exit 1
}
usage() { sed -n '5,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# sudo only when needed, so the script also works as root in containers/CI
# where sudo is usually absent.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

# apt-get update, then install the packages named: a fresh machine's lists
# may be empty.
apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# `dpkg -s` alone succeeds for removed packages whose config files remain, so
# look at the Status line.
is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

install_apt() {
    command -v dpkg >/dev/null || die "not a Debian-family system (no dpkg): install ${APT_PACKAGES[*]} by hand"
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "apt: all present, nothing to do (${APT_PACKAGES[*]})"
        return 0
    fi
    log "apt: installing ${missing[*]}"
    # update only now: it is the slow part, and a fresh machine's lists may be empty.
    apt_install "${missing[@]}"
    for p in "${missing[@]}"; do
        is_installed "$p" || die "apt: $p is still not installed"
    done
    log "apt: installed ${missing[*]}"
    # On machines with an init system the package starts its own server on
    # 8123/9000, which would collide with deploy/stack.sh's defaults.
    if [[ " ${missing[*]} " == *" clickhouse-server "* ]] && pgrep -x clickhouse-server >/dev/null 2>&1; then
        log "apt: note: the package started a system clickhouse-server; deploy/stack.sh runs its own."
        log "     Stop it (e.g. systemctl disable --now clickhouse-server) or set SLUICE_CLICKHOUSE_HTTP_PORT/_TCP_PORT."
    fi
}

# Prints the path of a tansu binary that actually runs.
working_tansu() {
    local cand
    for cand in "$(command -v tansu || true)" "$CARGO_BIN/tansu"; do
        if [[ -n $cand && -x $cand ]] && "$cand" --version >/dev/null 2>&1; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

install_tansu() {
    local bin ver pid
    if bin=$(working_tansu); then
        ver=$("$bin" --version 2>/dev/null | head -n 1)
        log "tansu: present, nothing to do ($bin: $ver)"
        [[ $ver == *"$TANSU_VERSION"* ]] || log "tansu: note: the project is tested with $TANSU_VERSION"
        return 0
    fi
    # A build already under way (e.g. started by hand or by another run) would
    # just block on cargo's lock; wait for it instead of starting a second one.
    while pid=$(pgrep -f -o 'cargo install tansu' 2>/dev/null); do
        log "tansu: a 'cargo install tansu' is already running (pid $pid); waiting for it to finish"
        while kill -0 "$pid" 2>/dev/null; do sleep 10; done
        if bin=$(working_tansu); then
            log "tansu: that build finished: $bin"
            return 0
        fi
    done
    command -v cargo >/dev/null || die "tansu: cargo not found; install Rust (rustup) first"
    local cmd=("${TANSU_INSTALL[@]}")
    # A binary that exists but does not run (broken build, missing library)
    # makes plain `cargo install` answer "already installed".
    [[ -e $CARGO_BIN/tansu ]] && cmd+=(--force)
    log "tansu: building with: ${cmd[*]}"
    log "tansu: this takes about 20 minutes on 2 cores (once)"
    "${cmd[@]}"
    bin=$(working_tansu) || die "tansu: cargo install finished but $CARGO_BIN/tansu does not run"
    log "tansu: installed $bin ($("$bin" --version 2>/dev/null | head -n 1))"
    [[ :$PATH: == *":$CARGO_BIN:"* ]] || log "tansu: note: $CARGO_BIN is not on PATH; deploy/stack.sh finds it there anyway"
}

# A virtualenv is current when it was built from these exact requirements
# (the stamp holds their hash) and its check passes.
venv_current() {
    local venv=$1 want=$2 check=$3
    [[ -s $venv/.requirements.sha256 && $(<"$venv/.requirements.sha256") == "$want" ]] &&
        "$venv/bin/python" -c "$check" 2>/dev/null
}

# install_venv NAME VENV REQUIREMENTS CHECK: a virtualenv at VENV with the
# pinned REQUIREMENTS, unless a current one is there; CHECK is Python code
# that must run in it (the imports its user needs).
install_venv() {
    local name=$1 venv=$2 requirements=$3 check=$4 want python
    want=$(sha256sum "$requirements" | cut -d' ' -f1)
    mkdir -p "$(dirname "$venv")"
    # Serialises concurrent installs (e.g. two worktrees' test runs).
    exec 8>>"$venv.lock"
    flock -w 900 8 || die "$name: $venv.lock is still held after 15 minutes"
    if venv_current "$venv" "$want" "$check"; then
        log "$name: present, nothing to do ($venv)"
        return 0
    fi
    python=$(command -v python3) || die "$name: python3 not found (Debian: apt-get install python3 python3-venv)"
    # Debian splits venv out of python3; only install it when venv really fails.
    if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
        command -v dpkg >/dev/null || die "$name: $python cannot create virtualenvs; install its venv module"
        log "$name: $python has no working venv module; installing python3-venv"
        apt_install python3-venv
    fi
    log "$name: creating $venv with $("$python" --version) and installing $requirements"
    rm -rf -- "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    "$venv/bin/python" -c "$check" || die "$name: installed, but its check fails in $venv"
    echo "$want" >"$venv/.requirements.sha256"
    log "$name: installed in $venv"
}

install_chdb() {
    install_venv chdb "$CHDB_VENV" "$CHDB_REQUIREMENTS" 'import chdb, lz4, clickhouse_cityhash'
    log "chdb: $("$CHDB_VENV/bin/python" -c 'import chdb; print("chdb-core", chdb.__version__, "engine", chdb.engine_version)')"
}

install_schemathesis() {
    install_venv schemathesis "$SCHEMATHESIS_VENV" "$SCHEMATHESIS_REQUIREMENTS" 'import schemathesis'
    log "schemathesis: $("$SCHEMATHESIS_VENV/bin/schemathesis" --version)"
}

install_kubernetes_validate() {
    install_venv kubernetes-validate "$KUBERNETES_VALIDATE_VENV" "$KUBERNETES_VALIDATE_REQUIREMENTS" 'import kubernetes_validate'
}

# install_node_modules NAME DIR PACKAGE_JSON: DIR/node_modules with the
# versions pinned in PACKAGE_JSON, unless DIR already holds them.
install_node_modules() {
    local name=$1 modules=$2 package=$3
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        command -v dpkg >/dev/null || die "$name: install node and npm by hand"
        log "$name: installing nodejs and npm (apt)"
        apt_install nodejs npm
    fi
    mkdir -p "$modules"
    exec 9>>"$modules.lock"
    flock -w 900 9 || die "$name: $modules.lock is still held after 15 minutes"
    if cmp -s "$package" "$modules/package.json" && [[ -d $modules/node_modules ]]; then
        log "$name: Node packages present, nothing to do ($modules)"
        return 0
    fi
    log "$name: installing the Node packages of $package with node $(node --version)"
    rm -rf -- "$modules/node_modules" "$modules/package.json"
    cp "$package" "$modules/package.json.new"
    mv "$modules/package.json.new" "$modules/package.json"
    if ! (cd "$modules" && npm install --no-audit --no-fund --silent); then
        rm -f "$modules/package.json"
        die "$name: npm install failed in $modules"
    fi
    log "$name: installed in $modules"
}

install_sdks() {
    install_venv sdk-check "$SDK_CHECK_CACHE/venv" "$SDK_CHECK_PINS/requirements.txt" 'import segment.analytics'
    install_node_modules sdks "$SDK_CHECK_CACHE/node" "$SDK_CHECK_PINS/package.json"
}

# Debian's chromium, driven by npm's playwright-core (which downloads no
# browser of its own) for the browser tests of deploy/browser/.
install_browser() {
    if ! is_installed chromium; then
        command -v dpkg >/dev/null || die "browser: not a Debian-family system (no dpkg): install chromium by hand"
        log "browser: installing chromium (apt)"
        apt_install chromium
        is_installed chromium || die "browser: chromium is still not installed"
    fi
    log "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
    install_node_modules browser "$BROWSER_CACHE/node" "$ROOT/deploy/browser/package.json"
}

# Debian's prometheus package: /usr/bin/prometheus and /usr/bin/promtool. Its
# systemd unit is not used; the tests run the binary with their own config.
install_prometheus() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        log "prometheus: present, nothing to do ($(prometheus --version 2>&1 | head -n 1))"
        return 0
    fi
    command -v dpkg >/dev/null || die "prometheus: not a Debian-family system (no dpkg): install prometheus and promtool by hand"
    log "prometheus: installing prometheus (apt)"
    apt_install prometheus
    command -v prometheus >/dev/null && command -v promtool >/dev/null ||
        die "prometheus: installed, but prometheus or promtool is not on PATH"
    log "prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
    # On machines with an init system the package starts its own server on 9090
    # (and node exporter on 9100); nothing of Sluice's uses them.
    if pgrep -x prometheus >/dev/null 2>&1; then
        log "prometheus: note: the package started a system prometheus on :9090; Sluice's tests run their own."
        log "     Stop it if unwanted (e.g. systemctl disable --now prometheus)."
    fi
}

# Debian's zookeeper package: the jars in /usr/share/zookeeper and the
# scripts, without a service (that is the zookeeperd package, which is not
# installed); its dependency default-jre brings Java. sluice-dev cluster runs
# `java` with those jars and a zoo.cfg of its own.
install_zookeeper() {
    if is_installed zookeeper && command -v java >/dev/null; then
        log "zookeeper: present, nothing to do (zookeeper $(dpkg-query -W -f='${Version}' zookeeper), $(java -version 2>&1 | head -n 1))"
        return 0
    fi
    command -v dpkg >/dev/null || die "zookeeper: not a Debian-family system (no dpkg): install ZooKeeper 3.8 and a Java runtime by hand"
    log "zookeeper: installing zookeeper (apt; brings a Java runtime)"
    apt_install zookeeper
    is_installed zookeeper || die "zookeeper: zookeeper is still not installed"
    command -v java >/dev/null || die "zookeeper: installed, but java is not on PATH"
    log "zookeeper: installed zookeeper $(dpkg-query -W -f='${Version}' zookeeper), $(java -version 2>&1 | head -n 1)"
    # Only zookeeperd has a service; should one run anyway (installed by
    # hand), it holds 2181, which the cluster does not use by default.
    if pgrep -f 'org.apache.zookeeper.server.quorum.QuorumPeerMain /etc/zookeeper' >/dev/null 2>&1; then
        log "zookeeper: note: a system ZooKeeper is running (zookeeperd); sluice-dev cluster runs its own."
        log "     Stop it if unwanted (e.g. systemctl disable --now zookeeper)."
    fi
}

case ${1:-all} in
all)
    install_apt
    install_tansu
    ;;
apt) install_apt ;;
tansu) install_tansu ;;
chdb) install_chdb ;;
schemathesis) install_schemathesis ;;
kubernetes) install_kubernetes_validate ;;
sdks) install_sdks ;;
browser) install_browser ;;
prometheus) install_prometheus ;;
zookeeper) install_zookeeper ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
