#!/bin/sh
# Restart every running pam-daphne@PORT instance one at a time, so the others keep serving: `systemctl restart`
# sends SIGTERM and waits while the process drains and exits, systemd starts it again, and the next one waits until
# this one answers GET /healthz with 200 on its own port. Stops at the first instance that does not come back.
#
# Usage (as root): deploy/rolling-restart.sh
# The health check is made as nginx makes requests: with the site's name as Host (ALLOWED_HOSTS refuses others;
# PAM_HEALTH_HOST, else the first ALLOWED_HOSTS entry of PAM_ENV_FILE) and X-Forwarded-Proto https (else a
# deployment with SECURE_SSL_REDIRECT answers a redirect).
set -eu

env_file="${PAM_ENV_FILE:-/etc/pam/pam.env}"
host="${PAM_HEALTH_HOST:-$(sed -n 's/^ALLOWED_HOSTS=\([^,]*\).*/\1/p' "$env_file")}"
wait_s="${PAM_HEALTH_WAIT_S:-60}"

units=$(systemctl list-units --plain --no-legend --state=active 'pam-daphne@*.service' | awk '{print $1}')
[ -n "$units" ] || { echo "no pam-daphne@ instance is running" >&2; exit 1; }

for unit in $units; do
    port=${unit#pam-daphne@}
    port=${port%.service}
    echo "$unit: restarting (it drains first)"
    systemctl restart "$unit"
    waited=0
    until curl -fsS -o /dev/null --max-time 2 -H "Host: $host" -H "X-Forwarded-Proto: https" \
            "http://127.0.0.1:$port/healthz"; do
        waited=$((waited + 1))
        if [ "$waited" -ge "$wait_s" ]; then
            echo "$unit: /healthz not healthy after ${wait_s} s; stopping the rolling restart" >&2
            exit 1
        fi
        sleep 1
    done
    echo "$unit: healthy"
done
