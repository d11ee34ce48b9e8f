# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# A private Docker engine for the docker tests and the benchmark (sourced,
# not run): its own socket, data-root, exec-root and pidfile under a temp
# dir, no iptables, no bridge, vfs storage, so it runs on a plain machine
# without systemd and touches nothing of a system engine. The image is a
# busybox rootfs made by `docker import`: there is no registry.
#
# Use: docker_lib_init DIR (sets R, docker_sock), docker_engine_start,
# docker_image_build, dk ARGS... (the engine's own client), and call
# docker_lib_cleanup from the caller's EXIT trap. A test (after lib.sh) may
# start the engine and make the image with docker_lib_up, and end with
# docker_lib_finish.

DOCKER=/usr/bin/docker
DOCKER_IMAGE=local/busy:1
docker_pid=

docker_lib_init() {
        R=$1
        docker_sock=$R/docker.sock
        mkdir -p "$R"
}

# The engine's own client, on the engine's socket ($docker_sock: a test may
# start the engine on another socket to hide it from joyrided for a while).
dk() {
        "$DOCKER" -H "unix://$docker_sock" "$@"
}

# Prints why the engine cannot run here and returns 1, or returns 0.
docker_engine_available() {
        if [ ! -x /usr/sbin/dockerd ] && ! command -v dockerd >/dev/null 2>&1; then
                echo "dockerd is not installed (apt-get install docker.io)"
                return 1
        fi
        if [ ! -x "$DOCKER" ]; then
                echo "$DOCKER is not installed (apt-get install docker.io)"
                return 1
        fi
        if [ ! -x /bin/busybox ]; then
                echo "/bin/busybox is not installed (apt-get install busybox-static)"
                return 1
        fi
        if [ "$(id -u)" != 0 ]; then
                echo "dockerd needs root"
                return 1
        fi
        return 0
}

# Starts the engine (again, after docker_engine_kill) and waits for /_ping.
# Returns 1 with the engine's log on stderr if it does not answer in 20 s.
docker_engine_start() {
        dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
                --host "unix://$docker_sock" --data-root "$R/data" --exec-root "$R/exec" \
                --pidfile "$R/dockerd.pid" --shutdown-timeout 1 >>"$R/dockerd.log" 2>&1 </dev/null &
        docker_pid=$!
        for _ in $(seq 400); do
                if curl -sf --max-time 1 --unix-socket "$docker_sock" http://localhost/_ping >/dev/null 2>&1; then
                        return 0
                fi
                if ! kill -0 "$docker_pid" 2>/dev/null; then
                        break
                fi
                sleep 0.05
        done
        echo "dockerd did not come up; its log:" >&2
        tail -20 "$R/dockerd.log" >&2
        return 1
}

# SIGKILL the engine, as a crash would. Its containerd notices and exits
# (the container shims live on); a restart while that containerd is still
# there waits for its socket and fails, so wait for it, and clear the
# pidfiles a killed engine leaves behind.
docker_engine_kill() {
        [ -n "$docker_pid" ] || return 0
        local cpid
        cpid=$(cat "$R/exec/containerd/containerd.pid" 2>/dev/null || true)
        kill -KILL "$docker_pid" 2>/dev/null || true
        wait "$docker_pid" 2>/dev/null || true
        docker_pid=
        if [ -n "$cpid" ]; then
                for _ in $(seq 100); do
                        _pid_alive "$cpid" || break
                        sleep 0.05
                done
                if _pid_alive "$cpid" && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = containerd ]; then
                        kill -KILL "$cpid" 2>/dev/null || true
                fi
        fi
        rm -f "$R/dockerd.pid" "$R/exec/containerd/containerd.pid"
}

# True while PID runs (a zombie does not count).
_pid_alive() {
        local st
        st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
        [ -n "$st" ] && [ "$st" != Z ]
}

docker_image_build() {
        local root="$R/rootfs"
        rm -rf "$root"
        mkdir -p "$root/bin" "$root/tmp" "$root/etc"
        cp /bin/busybox "$root/bin/busybox"
        ln -s busybox "$root/bin/sh"
        ln -s busybox "$root/bin/sleep"
        ln -s busybox "$root/bin/true"
        tar -C "$root" -cf "$R/rootfs.tar" .
        dk import "$R/rootfs.tar" "$DOCKER_IMAGE" >/dev/null
}

# Removes every container, then stops the engine by its PID: `sleep` as PID 1
# ignores SIGTERM, so containers left running make the shutdown slow. Then
# whatever a killed engine may have left: its containerd, the containers'
# processes and their shims (all found through the pidfiles under $R, so
# only processes this fixture started are touched), and mounts under $R.
docker_lib_cleanup() {
        local pid ppid f cpid
        set +e # from an EXIT trap: every step must run
        cpid=$(cat "${R:-/nonexistent}/exec/containerd/containerd.pid" 2>/dev/null || true)
        if [ -n "$docker_pid" ] && _pid_alive "$docker_pid"; then
                local ids
                ids=$(dk ps -aq 2>/dev/null || true)
                if [ -n "$ids" ]; then
                        # shellcheck disable=SC2086
                        dk rm -f $ids >/dev/null 2>&1 || true
                fi
                kill -TERM "$docker_pid" 2>/dev/null || true
                for _ in $(seq 100); do
                        _pid_alive "$docker_pid" || break
                        sleep 0.1
                done
                kill -KILL "$docker_pid" 2>/dev/null || true
                wait "$docker_pid" 2>/dev/null || true
        fi
        docker_pid=
        [ -n "${R:-}" ] && [ -d "$R/exec" ] || return 0
        while IFS= read -r f; do
                pid=$(cat "$f" 2>/dev/null || true)
                [ -n "$pid" ] && _pid_alive "$pid" || continue
                ppid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || true)
                kill -KILL "$pid" 2>/dev/null || true
                case "$(cat "/proc/$ppid/comm" 2>/dev/null)" in
                        containerd-shim*) kill -KILL "$ppid" 2>/dev/null || true ;;
                esac
        done < <(find "$R/exec" -name init.pid 2>/dev/null)
        # The engine's containerd outlives it by a moment (and a killed
        # engine's for good); it writes under $R until it is gone.
        [ -n "$cpid" ] || cpid=$(cat "$R/exec/containerd/containerd.pid" 2>/dev/null || true)
        if [ -n "$cpid" ] && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = containerd ]; then
                for _ in $(seq 50); do
                        _pid_alive "$cpid" || break
                        sleep 0.1
                done
                kill -KILL "$cpid" 2>/dev/null || true
                for _ in $(seq 50); do
                        _pid_alive "$cpid" || break
                        sleep 0.1
                done
        fi
        { grep -F " $R/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
                umount -l "$m" 2>/dev/null || true
        done
        return 0
}

# rm -rf that retries: files can still be going away right after cleanup.
docker_lib_rmtree() {
        for _ in 1 2 3 4 5; do
                rm -rf "$1" 2>/dev/null && return 0
                sleep 0.5
        done
        rm -rf "$1"
}

# docker_lib_up: after docker_lib_init, the engine started (the test is
# skipped when it cannot start here) and the busybox image made; says so
# with the engine's version as an ok line.
docker_lib_up() {
        docker_engine_start || skip "dockerd cannot start on this machine (its log is above)"
        docker_image_build
        ok "private dockerd up ($(dk version --format '{{.Server.Version}} API {{.Server.APIVersion}}'))"
}

# docker_lib_remove_images: every image on the engine, when it runs (on this
# private engine they are all the test's).
docker_lib_remove_images() {
        [ -n "$docker_pid" ] || return 0
        dk images -aq | sort -u | xargs -r "$DOCKER" -H "unix://$docker_sock" rmi -f >/dev/null 2>&1
}

# docker_lib_finish TMP: docker_lib_cleanup, then TMP removed, or kept (and
# named) when KEEP_TMP=1.
docker_lib_finish() {
        docker_lib_cleanup
        if [ "${KEEP_TMP:-}" = 1 ]; then echo "kept $1"; else docker_lib_rmtree "$1"; fi
}
