# SPDX-License-Identifier: MIT
# fish completion for joyrided(8): the options come from `joyrided --help`,
# so the list never falls behind the daemon.

if command -q joyrided
        for opt in (joyrided --help 2>/dev/null | string match -r -a -g -- '--([a-z0-9][a-z0-9-]*)' | sort -u)
                complete -c joyrided -l $opt
        end
end
complete -c joyrided -l log-level -x -a 'emerg alert crit err warning notice info debug'
complete -c joyrided -l bus -x -a 'system user none'
complete -c joyrided -l config -r -F
complete -c joyrided -l etcd-ca-file -r -F
complete -c joyrided -l etcd-cert-file -r -F
complete -c joyrided -l etcd-key-file -r -F
complete -c joyrided -l etcd-password-file -r -F
complete -c joyrided -l hosts-directory -x -a '(__fish_complete_directories)'
complete -c joyrided -l state-directory -x -a '(__fish_complete_directories)'
