#!/bin/bash
# SPDX-License-Identifier: MIT
# Shell completion for joyridectl and joyrided in bash, zsh and fish: each
# completes the verbs and options a user types, and lists exactly the verbs
# `joyridectl --help` names.
#
# Usage: test-completion.sh BUILDDIR
set -euo pipefail

BUILD=$(cd "${1:?usage: test-completion.sh BUILDDIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
. "$SRC/tests/integration/lib.sh"
SC=$SRC/shell-completion
export PATH="$BUILD/src:$PATH"

need_commands bash zsh fish
[ -f /usr/share/bash-completion/bash_completion ] || {
        echo "SKIP: bash-completion not installed"
        exit 77
}

verbs=$(joyridectl --help | sed -n '/^Commands:/,/^$/p' | grep -oE '^  [a-z-]+' | tr -d ' ' | sort | tr '\n' ' ')
[ -n "$verbs" ] || fail "no verbs in joyridectl --help"

# bash: what COMPREPLY holds for a command line typed so far.
bash_complete() {
        local file=$1 cmd=$2 line=$3
        bash -c '
                source /usr/share/bash-completion/bash_completion
                source "$1"
                COMP_LINE=$3; COMP_POINT=${#COMP_LINE}
                read -ra COMP_WORDS <<<"$3"
                [[ $3 == *" " ]] && COMP_WORDS+=("")
                COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
                "_$2"
                printf "%s\n" "${COMPREPLY[@]}"
        ' _ "$file" "$cmd" "$line" | sort | tr '\n' ' '
}
[ "$(bash_complete "$SC/joyridectl" joyridectl "joyridectl ")" = "$verbs" ] ||
        fail "bash: joyridectl verbs: $(bash_complete "$SC/joyridectl" joyridectl "joyridectl "), --help has: $verbs"
[ "$(bash_complete "$SC/joyridectl" joyridectl "joyridectl mon")" = "monitor " ] || fail "bash: joyridectl mon"
[ "$(bash_complete "$SC/joyridectl" joyridectl "joyridectl log-level de")" = "debug " ] || fail "bash: log-level de"
[ "$(bash_complete "$SC/joyridectl" joyridectl "joyridectl --json=")" = "off pretty short " ] ||
        fail "bash: --json=: $(bash_complete "$SC/joyridectl" joyridectl "joyridectl --json=")"
[ "$(bash_complete "$SC/joyrided" joyrided "joyrided --dns-p")" = "--dns-port= " ] ||
        fail "bash: joyrided --dns-p: $(bash_complete "$SC/joyrided" joyrided "joyrided --dns-p")"
[ "$(bash_complete "$SC/joyrided" joyrided "joyrided --bus=u")" = "user " ] || fail "bash: joyrided --bus=u"
ok "bash: joyridectl verbs, values and joyrided's options (from --help)"

# fish: complete -C prints the candidates for a command line.
fish_complete() {
        fish --no-config -c "source $SC/$1.fish; complete -C'$2'" | cut -f1 | sort | tr '\n' ' '
}
[ "$(fish_complete joyridectl "joyridectl ")" = "$verbs" ] ||
        fail "fish: joyridectl verbs: $(fish_complete joyridectl "joyridectl "), --help has: $verbs"
[ "$(fish_complete joyridectl "joyridectl log-level w")" = "warning " ] || fail "fish: log-level w"
[ "$(fish_complete joyrided "joyrided --dns-p")" = "--dns-port " ] ||
        fail "fish: joyrided --dns-p: $(fish_complete joyrided "joyrided --dns-p")"
ok "fish: joyridectl verbs and values, joyrided's options"

# zsh: the files parse, and _joyridectl lists the same verbs.
zsh -n "$SC/_joyridectl" || fail "zsh: _joyridectl does not parse"
zsh -n "$SC/_joyrided" || fail "zsh: _joyrided does not parse"
zverbs=$(sed -n "/verbs=(/,/^ *)$/p" "$SC/_joyridectl" | grep -oE "^ *'[a-z-]+:" | tr -d " ':" | sort | tr '\n' ' ')
[ "$zverbs" = "$verbs" ] || fail "zsh: _joyridectl verbs: $zverbs, --help has: $verbs"
ok "zsh: completion files parse and list every verb"
