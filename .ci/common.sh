# Shared helpers for the .ci/ scripts; sourced, never run.
# shellcheck shell=bash

CI_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CI_WORK=$CI_ROOT/.ci/work
CI_VENV=$CI_WORK/venv
CI_CONTAINERS_CONF=$CI_WORK/containers.conf
CI_WHEELHOUSE=$CI_WORK/wheelhouse
CI_SDK_WHEELHOUSE=$CI_WORK/sdk-wheels
CI_SDK_VERSION=1.0.1
# Local images built by CI (no registry is reachable from CI).
CI_BASE_IMAGE=${ANK_BASE_IMAGE:-localhost/ank-base:bookworm}
CI_AGENT_IMAGE=${ANK_AGENT_IMAGE:-localhost/ank-agent:ci}

section() {
    printf '\n========== %s ==========  [%s, +%ss]\n' "$*" "$(date -u +%H:%M:%S)" "$SECONDS"
}

die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages, users and images)"
}

# Podman on hybrid-cgroup hosts (cgroup v1 + unified): crun fails there, runc works; the
# default ulimits (nofile 1M) are refused by the sandboxed kernel. cgroupfs and the file
# events logger because no systemd is PID 1 on CI machines (no journald, no user slices);
# netavark named explicitly (Debian's podman also ships a CNI config it would warn about).
write_containers_conf() {
    local path=$1
    mkdir -p "$(dirname "$path")"
    cat >"$path" <<'CONF'
# Written by .ci/ (ank-agent CI); passed to podman through CONTAINERS_CONF.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
CONF
    chmod 0644 "$path"
}

# Writes a tarball of a tiny rootfs made of Debian's busybox-static, for `podman import`.
# Usage: busybox_rootfs_tar <out.tar>
busybox_rootfs_tar() {
    local out=$1 dir
    dir=$(mktemp -d)
    chmod 0755 "$dir" # the image's "/": mktemp's 0700 would lock out non-root workloads
    mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
    cp /bin/busybox "$dir/bin/busybox"
    local applet
    for applet in sh sleep cat echo ls id mkfifo printf test true false wc head tail; do
        ln -s busybox "$dir/bin/$applet"
    done
    tar -C "$dir" -cf "$out" .
    rm -rf "$dir"
    chmod 0644 "$out"
}
