#!/usr/bin/env bash
# Candidate-page translations: extract the messages, update each language's catalogue, compile.
#   scripts/i18n.sh            # extract + update + compile
#   scripts/i18n.sh init fr    # start a new language
# Then translate web/translations/<lang>/LC_MESSAGES/messages.po and run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL="${PYBABEL:-pybabel}"
$PYBABEL extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
  --project Proficio -o web/translations/messages.pot .
if [ "${1:-}" = "init" ]; then
  $PYBABEL init -i web/translations/messages.pot -d web/translations -l "$2"
fi
$PYBABEL update -i web/translations/messages.pot -d web/translations --no-fuzzy-matching
$PYBABEL compile -d web/translations --statistics
