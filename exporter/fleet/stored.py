"""How the fleet's registrations are kept in Redis: each one's field and value, and the scripts.

A registration is one field of a hash: the field is JSON ``[source, job_id]``
(so no source or ID can be mistaken for another), the value
``REGISTERED_AT LABELS`` with the labels as canonical JSON.  A removal leaves
a tombstone, the field in a sorted set scored by when (Redis' own clock), for
:data:`GONE_FOR`: a member that was away can then tell a registration removed
meanwhile from one Redis lost (a restart without persistence), which it
writes back.  Each script writes and publishes in one step, so the feed's
order is the store's.
"""

from __future__ import annotations

import json

from exporter.fleet.wire import Script

__all__ = [
    "ADD",
    "GONE_FOR",
    "REMOVE",
    "RESTORE",
    "JobKey",
    "Labels",
    "decode_field",
    "decode_labels",
    "encode_field",
    "encode_labels",
]

Labels = tuple[tuple[str, str], ...]  # a job's own labels, as exporter.jobs.keys.Labels
JobKey = tuple[str, str]  # (source, job_id)
# How long a removal is remembered: a member away for longer may bring the job back.
GONE_FOR = 86_400.0

# KEYS: the registrations, the count per source, the tombstones. ARGV: field, registered_at,
# labels, source, the most a source may have (-1: no bound), channel.  1: new, 0: known
# (labels updated), -1: full.
ADD = Script(r"""
local old = redis.call('HGET', KEYS[1], ARGV[1])
local value
if old then
  local cut = string.find(old, ' ', 1, true)
  if cut == nil then
    value = ARGV[2] .. ' ' .. ARGV[3]  -- unreadable: written afresh
  elseif string.sub(old, cut + 1) == ARGV[3] then
    return 0
  else
    value = string.sub(old, 1, cut) .. ARGV[3]
  end
else
  -- Counts left by a hash that is gone (evicted or deleted alone) are stale: start again.
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
  local most = tonumber(ARGV[5])
  if most >= 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0') >= most then
    return -1
  end
  value = ARGV[2] .. ' ' .. ARGV[3]
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
  redis.call('ZREM', KEYS[3], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('PUBLISH', ARGV[6], '+' .. ARGV[1] .. '\n' .. value)
if old then return 0 end
return 1
""")
# KEYS as above. ARGV: field, source, channel, GONE_FOR in ms.  1: removed, 0: was not there.
# The tombstone and the message go either way: a member may hold the job (from its state
# file, or a copy of a registration Redis lost) that Redis does not.
REMOVE = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[3], '-' .. ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
""")
# KEYS as above. ARGV: channel, then (field, value, source) for each registration a member
# holds that Redis did not list.  One answer each: 1 written back, 0 removed (a tombstone),
# 2 there now (registered again meanwhile).  Counts left by a hash that is gone (evicted
# alone) are stale: they start again from the registrations written back.
RESTORE = Script(r"""
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
local out = {}
for i = 2, #ARGV, 3 do
  local field, value, source = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HEXISTS', KEYS[1], field) == 1 then
    out[#out + 1] = 2
  elseif redis.call('ZSCORE', KEYS[3], field) then
    out[#out + 1] = 0
  else
    redis.call('HSET', KEYS[1], field, value)
    redis.call('HINCRBY', KEYS[2], source, 1)
    redis.call('PUBLISH', ARGV[1], '+' .. field .. '\n' .. value)
    out[#out + 1] = 1
  end
end
return out
""")


def encode_field(source: str, job_id: str) -> str:
    """A registration's field in the hash: JSON, so no source or ID can be mistaken for another."""
    return json.dumps([source, job_id], ensure_ascii=False)


def decode_field(field: str) -> JobKey | None:
    """A field back into its (source, job_id); ``None`` if it is anything else."""
    try:
        key = json.loads(field)
    except ValueError:
        return None
    if isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key):
        return (key[0], key[1])
    return None


def decode_labels(text: str) -> Labels | None:
    """JSON ``[[name, value], ...]`` back into labels; ``None`` if it is anything else."""
    try:
        pairs = json.loads(text)
    except ValueError:
        return None
    if not isinstance(pairs, list):
        return None
    labels: list[tuple[str, str]] = []
    for pair in pairs:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
        ):
            return None
        labels.append((pair[0], pair[1]))
    return tuple(labels)


def encode_labels(labels: Labels) -> str:
    """Labels as one canonical string: the script compares them as text."""
    return json.dumps([list(pair) for pair in labels], ensure_ascii=False, separators=(",", ":"))
