#!/usr/bin/env bash
# Installs the system packages hstream-chaos needs, if they are missing:
# ZooKeeper (Debian package, run by the harness with Java), iproute2 (network
# namespaces), iptables (network faults), iputils-ping (fault measurements),
# faketime (clock faults run nodes under libfaketime), openssh-client (hosts
# of an SSH inventory) and python3-venv (the upstream-client compatibility
# test). With --test it
# also installs chromium (the headless-browser test of report.html),
# debootstrap (the docker runtime's base image is made with it) and
# docker-compose (the test that brings a run's compose.yaml up).
# Idempotent.
set -euo pipefail

need=()
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || need+=(faketime)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
fi

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]}; run this script as root (or install them with apt-get)" >&2
    exit 2
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
