# shellcheck shell=bash
# Shared by the launch/*.sh scripts (sourced, not run): dry runs, errors, argument checks.
#
# Every command that touches a cloud or a cluster goes through `run`, so --dry-run prints
# exactly what would be executed, one command per line after "+ ", quoted for a shell.

# Read by the scripts that source this file; set by parse_common_arg.
# shellcheck disable=SC2034
DRY_RUN=0 CONFIG="" WORKDIR="" TFDS_DIR=""

# Quotes one argument for a POSIX shell, leaving plain words as they are (readable dry runs).
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# The command line of "$@", quoted.
command_line() {
  local out="" arg
  for arg in "$@"; do
    out+="${out:+ }$(quote "$arg")"
  done
  printf '%s' "$out"
}

# Runs "$@", or only prints it under --dry-run. Printed commands go to stdout in a dry run
# (they are the output) and to stderr otherwise (a log of what ran, apart from its output).
run() {
  if ((DRY_RUN)); then
    printf '+ %s\n' "$(command_line "$@")"
  else
    printf '+ %s\n' "$(command_line "$@")" >&2
    "$@"
  fi
}

# The options every script shares; anything else is an error. Call it from the last branch
# of a script's own `case` over its arguments (the script defines `usage`).
parse_common_arg() {
  case "$1" in
    --config=*) CONFIG="${1#*=}" ;;
    --workdir=*) WORKDIR="${1#*=}" ;;
    --tfds-data-dir=*) TFDS_DIR="${1#*=}" ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 2
}

# require VALUE FLAG: stops with a usage error when VALUE is empty.
require() {
  [[ -n $1 ]] || die "$2 is required (see --help)"
}

# The repository root: launch/ is one level below it.
repo_root() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

# `python -m mae_jax.main` and relative config paths need the repository root as cwd.
check_cwd() {
  [[ -f mae_jax/main.py ]] || die "run this from the repository root ($(repo_root))"
}
