# SPDX-License-Identifier: MIT
# fish completion for joyridectl(1)

set -l verbs status records query add remove members sync reload monitor statistics log-level

function __joyridectl_names
        joyridectl --no-pager --no-legend $argv records 2>/dev/null | string replace -r '\s.*' '' | sort -u
end

complete -c joyridectl -f
complete -c joyridectl -s h -l help -d 'Show the help'
complete -c joyridectl -l version -d 'Show the version'
complete -c joyridectl -l user -d 'Talk to the daemon on the user bus'
complete -c joyridectl -l system -d 'Talk to the daemon on the system bus'
complete -c joyridectl -l source -x -a 'dbus hosts: docker: peer: etcd:' -d 'Only records whose source starts with SOURCE'
complete -c joyridectl -l type -x -a 'A AAAA CNAME TXT PTR' -d 'Record type'
complete -c joyridectl -l ttl -x -d 'TTL of an added record'
complete -c joyridectl -l json -x -a 'short pretty off' -d 'Print JSON'
complete -c joyridectl -l no-legend -d 'Print neither the header line nor the footer'
complete -c joyridectl -l no-pager -d 'Do not pipe the output into a pager'

complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a status -d "Show the daemon's state"
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a records -d 'List records, with their source and TTL'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a query -d 'Resolve a name (or an address, in reverse)'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a add -d 'Add a record (kept across restarts)'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a remove -d 'Remove records added with add'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a members -d 'List cluster members'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a sync -d 'Sync records with the cluster now'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a reload -d 'Re-read the configuration and hosts files'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a monitor -d 'Follow record and member changes'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a statistics -d 'Show the query counters'
complete -c joyridectl -n "not __fish_seen_subcommand_from $verbs" -a log-level -d "Show or set the daemon's log level"

complete -c joyridectl -n '__fish_seen_subcommand_from records query' -a '(__joyridectl_names)'
complete -c joyridectl -n '__fish_seen_subcommand_from remove' -a '(__joyridectl_names --source=dbus)'
complete -c joyridectl -n '__fish_seen_subcommand_from members; and not __fish_seen_subcommand_from forget' -a forget -d "Forget a member's key and records"
complete -c joyridectl -n '__fish_seen_subcommand_from forget' -a '(joyridectl --no-pager --no-legend members 2>/dev/null | string replace -r "\\s.*" "")'
complete -c joyridectl -n '__fish_seen_subcommand_from log-level' -a 'emerg alert crit err warning notice info debug'
