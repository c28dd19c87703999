# Shared by the rig's scripts (sourced, not run).

# need_packages LOG WHAT PKG...: install those of the Debian packages PKG that are missing, with
# apt-get (through sudo when not root); LOG is the calling script's log function, WHAT names the
# packages in its lines.  With RIG_NO_APT set, a missing package is an error instead.
need_packages() {
    local log=$1 what=$2 p missing="" sudo=""
    shift 2
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ -n "${RIG_NO_APT:-}" ]; then
        "$log" "missing $what:$missing (RIG_NO_APT set)"
        return 1
    fi
    "$log" "installing $what:$missing"
    [ "$(id -u)" != 0 ] && sudo=sudo
    $sudo apt-get install -y --no-install-recommends $missing >&2
}
