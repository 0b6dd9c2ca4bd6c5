from django.dispatch import Signal

# Sent after the transaction that attached or detached keys commits, with
# keys=[APIKey, ...]. The gateway listens to drop its cached key lookups.
mapping_changed = Signal()
