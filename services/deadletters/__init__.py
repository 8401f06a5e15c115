"""``egov-pulse dead-letters list|replay``: the dead-letter topic for operators, no Kafka code.

``letters`` reads one dead letter's parts (pure), ``selection`` filters them (pure),
``reading`` reads the topics without a consumer group (the adapter), ``views`` expands a
dead letter to its events and shows it, ``replay`` publishes them again through
``egov-pulse backfill``'s path, and ``cli`` wires the commands (docs/runbooks.md,
EgovDeadLetters).
"""
