#!/bin/sh
# Start a srcflask container: wait for the database and migrate it (never dropping
# anything), make sure the production model is in the store, then run the command.
#   BOOT_MIGRATE=0      skip `flask db upgrade` (workers let the web container do it)
#   BOOT_PULL_MODEL=0   skip pulling the default model when none is in production
#   BOOT_DB_ATTEMPTS    how many times to try the database, 2 s apart (default 60)
set -eu

flask_cmd() { flask --app srcflask "$@"; }

if [ "${BOOT_MIGRATE:-1}" = "1" ]; then
    attempt=1
    until flask_cmd db upgrade; do
        if [ "$attempt" -ge "${BOOT_DB_ATTEMPTS:-60}" ]; then
            echo "boot: the database did not answer after $attempt attempts; giving up" >&2
            exit 1
        fi
        echo "boot: waiting for the database (attempt $attempt)" >&2
        attempt=$((attempt + 1))
        sleep 2
    done
fi

if [ "${BOOT_PULL_MODEL:-1}" = "1" ]; then
    flask_cmd models pull-default --if-missing
fi

exec "$@"
