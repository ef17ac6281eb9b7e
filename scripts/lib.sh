# What the project's scripts share; each sources it after `cd`-ing to the repository root.

# target/ by its real path: a venv records its own path, and CI's target/ may be a link to a
# per-machine cache that outlives the clone.
kiln_target() {
  mkdir -p target
  (cd target && pwd -P)
}

# cpu_now: sets $cpu to the user and system seconds, whole, of every process this shell has
# waited for (bash's `times`). Call it in the shell itself: in a subshell, `$(...)` included,
# it would count that subshell's children.
cpu_now() {
  local f
  f=$(mktemp)
  times > "$f"
  cpu=$(tail -n 1 "$f" | perl -ne '$t += $1 * 60 + $2 while /(\d+)m([\d.]+)s/g; END { printf "%d", $t }')
  rm -f "$f"
}

# apt_install PKG...: installs those of Debian's packages that are missing. One install at a
# time on this machine (CI runs these scripts beside one another, and the tests run them
# again): a second caller waits for the first, then finds the packages there.
apt_install() {
  missing() {
    [ "$(dpkg-query -W -f '${db:Status-Abbrev}\n' "$@" 2>/dev/null | grep -c '^ii')" -ne $# ]
  }
  missing "$@" || return 0
  (
    flock 8
    missing "$@" || exit 0
    echo "installing $* (Debian)" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o Dpkg::Use-Pty=0 \
      -o DPkg::Lock::Timeout=600 "$@" >&2
  ) 8>"${TMPDIR:-/tmp}/kiln-apt.lock"
}
