#!/usr/bin/env bash
# Regenerate the initial migration from storage/models.py (only until the first release).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -f storage/migrations/versions/0001_*.py /tmp/labelbot-gen.db
.venv/bin/python -c "
from alembic import command
from storage.db import alembic_config
command.revision(alembic_config('sqlite:////tmp/labelbot-gen.db'), message='initial schema', autogenerate=True, rev_id='0001')
"
f=$(ls storage/migrations/versions/0001_*.py)
sed -i -e 's/storage\.models\.UTCDateTime(timezone=True)/sa.DateTime(timezone=True)/g' \
       -e "s/sa\.text('(false)')/sa.false()/g" -e '/^# ###/d' -e '/    # ###/d' "$f"
.venv/bin/ruff check --fix -q "$f" || true
.venv/bin/ruff format -q "$f"
