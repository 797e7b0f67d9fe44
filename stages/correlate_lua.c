/*
 * correlate_lua.c - the Redis side of correlation: Lua scripts run by
 * EVALSHA (loaded on connect, reloaded on NOSCRIPT).  Each script touches
 * only keys of one tenant, all under P = "<prefix>:{t:<tenant>}:", so in
 * a Redis Cluster they share one slot; KEYS[1] always names one of them
 * for routing, and the scripts check that it starts with P.
 *
 * Keys (P omitted; ms = milliseconds; RET = correlate.retention):
 *   a:<alert>        string "hash\tincident\tupdated_ms\tresolved", PX RET:
 *                    dedupe record and where the alert lives
 *   i:<inc>          hash: v version, st new|active|closed, cb closed by
 *                    (merged|cli|alerts), pin (status set by CLI), n alerts,
 *                    nr unresolved alerts, fs/ls first/last seen (event
 *                    ms), sev max severity, ti/tal/tsev title and the alert
 *                    it came from, mi merged_into, mg merged (comma list),
 *                    prev previous closed incident, cont continued_from,
 *                    fl flood label, nx successor (the continuation of a
 *                    full incident, the incident opened after it closed),
 *                    rule, ten tenant, cr/up created/updated (wall ms),
 *                    ex last TTL refresh
 *   i:<inc>:al       hash alert id -> alert summary JSON (built in C)
 *   i:<inc>:why      list of JSON decisions (which entity joined which
 *                    alert, merges, noisy entities), at most max_why
 *   e:<entity>       zset incident -> last event ms the entity was seen in
 *                    it (mode any), plus "~<ctx>" members counting the
 *                    unrelated groups the entity glued (noisy detection)
 *   s:<ns>:<entity>  the same for mode selected (ns = rule + field values)
 *   g:<ns>           zset incident -> last ms for mode all (ns = rule +
 *                    fields + every correlating entity)
 *   p:<provider id>  string -> incident (provider incident grouping)
 *   f:<flood key>    hash time bucket -> alerts (flood counter)
 *   fo:<flood key>   string -> the current overflow incident
 *   noisy            hash entity -> wall ms it was found noisy (automatic)
 *   out              zset incident -> wall ms of its last unpublished
 *                    change: the outbox (removed by `ack` once published)
 *   asm:<alert>      hash of Defender rows (info, ev:<hash>), t0, rev, em
 *   asmdue           zset alert -> wall ms its assembly is due (or leased)
 * Outside the tag (plain commands from C only): <prefix>:tenants,
 * <prefix>:tenants:asm (sets of tenants with outbox / assembly work).
 *
 * Redis >= 6.2 (ZADD GT, SET KEEPTTL).  Any thread: constant data.
 */
#include "correlate_int.h"

/*
 * correlate: dedupe + lookup + merge + write for one alert, atomically.
 *
 * KEYS[1] = P.."a:"..alert_id
 * ARGV  1 P            2 alert id     3 content hash   4 event ms
 *       5 updated ms   6 wall ms      7 severity 0-4   8 title
 *       9 status      10 summary JSON 11 provider incident id or ""
 *      12 flood key (hash) or ""      13 flood label   14 mode any|all|selected
 *      15 ns          16 rule name    17 window ms     18 max alerts
 *      19 flood threshold             20 flood window ms
 *      21 noisy K (0 = off)           22 retention ms  23 index TTL ms
 *      24 max why     25 close on resolved 1|0        26 tenant
 *      27 NE, then NE pairs (entity key, flag: c correlating, s stop-listed,
 *         x other type)
 * Returns {status, incident, version, pending, how, {changed incidents},
 *          {entities newly found noisy}, noisy uses, merges, merges skipped}
 *   status: new | joined | updated | flood | dup | stale
 *   how:    new | entity | group | provider | flood | continuation |
 *           after_closed | update | dup
 *   pending (dup/stale): 1 when the incident's last change is still in
 *   the outbox, so a replay after a crash republishes it.
 */
const char corr_lua_correlate[] =
"local P = ARGV[1]\n"
"local aid = ARGV[2]\n"
"local chash = ARGV[3]\n"
"local t = tonumber(ARGV[4])\n"
"local upd = tonumber(ARGV[5])\n"
"local now = tonumber(ARGV[6])\n"
"local sev = tonumber(ARGV[7])\n"
"local title = ARGV[8]\n"
"local astatus = ARGV[9]\n"
"local summary = ARGV[10]\n"
"local pid = ARGV[11]\n"
"local fkey = ARGV[12]\n"
"local flabel = ARGV[13]\n"
"local mode = ARGV[14]\n"
"local ns = ARGV[15]\n"
"local rule = ARGV[16]\n"
"local W = tonumber(ARGV[17])\n"
"local MAXA = tonumber(ARGV[18])\n"
"local FLN = tonumber(ARGV[19])\n"
"local FLW = tonumber(ARGV[20])\n"
"local K = tonumber(ARGV[21])\n"
"local RET = tonumber(ARGV[22])\n"
"local ITTL = tonumber(ARGV[23])\n"
"local MAXWHY = tonumber(ARGV[24])\n"
"local CLOSE_RES = ARGV[25] == '1'\n"
"local tenant = ARGV[26]\n"
"local NE = tonumber(ARGV[27])\n"
"local E0 = 27\n"
     /* Lua turns numbers into strings with printf(\"%.14g\"), which costs
      * more than most commands: arguments that are numbers are passed as
      * the strings they arrived as, or formatted once as integers. */
"local tS, nowS, RETs, ITTLs = ARGV[4], ARGV[6], ARGV[22], ARGV[23]\n"
"local NEGWHY = '-' .. ARGV[24]\n"
"local akey = KEYS[1]\n"
"if NE == nil or #ARGV ~= E0 + 2 * NE or string.sub(akey, 1, #P) ~= P\n"
"   or t == nil or now == nil or W == nil then\n"
"  return redis.error_reply('ERR socpilot: bad correlate arguments')\n"
"end\n"
"local res = 0\n"
"if astatus == 'resolved' then res = 1 end\n"
"local sample = (tonumber(string.sub(chash, -2), 16) or 0) % 8 == 0\n"
"local OUT = P .. 'out'\n"
"local function S(n) return string.format('%d', n) end\n"
"local function ik(id) return P .. 'i:' .. id end\n"
"\n"
"local metas = {}\n"
/* The fields decisions need; full() loads the rest before a change. */
"local function meta(id)\n"
"  local m = metas[id]\n"
"  if m ~= nil then return m end\n"
"  local r = redis.call('HMGET', ik(id), 'st', 'n', 'fs', 'ls', 'mi', 'nx')\n"
"  if not r[1] then metas[id] = false return false end\n"
"  m = {id = id, st = r[1], n = tonumber(r[2]) or 0, fs = tonumber(r[3]) or 0,\n"
"       ls = tonumber(r[4]) or 0, mi = r[5] or nil, nx = r[6] or nil, extra = {}}\n"
"  metas[id] = m\n"
"  return m\n"
"end\n"
"\n"
"local function full(m)\n"
"  if m.full then return m end\n"
"  local r = redis.call('HMGET', ik(m.id), 'v', 'nr', 'sev', 'tsev', 'tal',\n"
"    'ti', 'pin', 'cb', 'ex', 'mg', 'fl')\n"
"  m.v = tonumber(r[1]) or 0 m.nr = tonumber(r[2]) or 0\n"
"  m.sev = tonumber(r[3]) or 0 m.tsev = tonumber(r[4]) or 0\n"
"  m.tal = r[5] or nil m.ti = r[6] or nil m.pin = r[7] or nil\n"
"  m.cb = r[8] or nil m.ex = tonumber(r[9]) or 0 m.mg = r[10] or nil\n"
"  m.fl = r[11] or nil m.full = true\n"
"  return m\n"
"end\n"
"\n"
"local function resolve(id)\n"
"  for _ = 1, 32 do\n"
"    local m = meta(id)\n"
"    if not m then return false end\n"
"    if not m.mi then return m end\n"
"    id = m.mi\n"
"  end\n"
"  return false\n"
"end\n"
"\n"
/* A closed or full incident points at the incident that took over its
 * story (nx); lookups follow it, so one successor collects everything. */
"local function follow(m)\n"
"  for _ = 1, 16 do\n"
"    if not m.nx or (m.st ~= 'closed' and m.n < MAXA) then return m end\n"
"    local f = resolve(m.nx)\n"
"    if not f then return m end\n"
"    m = f\n"
"  end\n"
"  return m\n"
"end\n"
"\n"
"local changed = {}\n"
"local function touch(m)\n"
"  full(m)\n"
"  if not m.touched then\n"
"    m.touched = true\n"
"    m.v = m.v + 1\n"
"    changed[#changed + 1] = m\n"
"  end\n"
"end\n"
"\n"
"local function status_from_alerts(m)\n"
"  if not CLOSE_RES or m.pin == '1' or m.mi then return end\n"
"  if m.n > 0 and m.nr <= 0 then\n"
"    if m.st ~= 'closed' then m.st = 'closed' m.cb = 'alerts' end\n"
"  elseif m.st == 'closed' and m.cb == 'alerts' then\n"
"    m.st = 'active' m.cb = ''\n"
"  end\n"
"end\n"
"\n"
"local function push_why(m, why)\n"
"  local n = redis.call('RPUSH', ik(m.id) .. ':why', cjson.encode(why))\n"
"  if n > MAXWHY then redis.call('LTRIM', ik(m.id) .. ':why', NEGWHY, '-1') end\n"
"end\n"
"\n"
"local function title_from(m, s, ti, id)\n"
"  if s > m.sev or not m.tal then\n"
"    m.sev = s m.tsev = s m.tal = id m.ti = ti\n"
"  end\n"
"end\n"
"\n"
"local function add_alert(m, why)\n"
"  touch(m)\n"
"  redis.call('HSET', ik(m.id) .. ':al', aid, summary)\n"
"  m.n = m.n + 1\n"
"  m.nr = m.nr + 1 - res\n"
"  if m.fs == 0 or t < m.fs then m.fs = t end\n"
"  if t > m.ls then m.ls = t end\n"
"  title_from(m, sev, title, aid)\n"
"  if m.st == 'new' and m.n >= 2 then m.st = 'active' end\n"
"  status_from_alerts(m)\n"
"  push_why(m, why)\n"
"end\n"
"\n"
"local function create(links)\n"
"  local base = 'inc-' .. string.sub(redis.sha1hex(tenant .. '\\n' .. aid), 1, 16)\n"
"  local id = base\n"
"  for i = 2, 64 do\n"
"    if redis.call('EXISTS', ik(id)) == 0 then break end\n"
"    id = base .. '-' .. i\n"
"  end\n"
"  local m = {id = id, v = 0, st = 'new', n = 0, nr = 0, fs = 0, ls = 0,\n"
"             sev = 0, tsev = 0, ex = 0, full = true,\n"
"             extra = {'cr', nowS, 'ten', tenant, 'rule', rule}}\n"
"  for i = 1, #links do m.extra[#m.extra + 1] = links[i] end\n"
"  metas[id] = m\n"
"  return m\n"
"end\n"
"\n"
"local function merge(dst, src)\n"
"  touch(dst)\n"
"  touch(src)\n"
"  local al = redis.call('HGETALL', ik(src.id) .. ':al')\n"
"  for i = 1, #al, 2 do\n"
"    local ak = P .. 'a:' .. al[i]\n"
"    local rec = redis.call('GET', ak)\n"
"    if rec then\n"
"      local h, _, u, r = string.match(rec, '^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)$')\n"
"      if h then\n"
"        redis.call('SET', ak, h .. '\\t' .. dst.id .. '\\t' .. u .. '\\t' .. r, 'KEEPTTL')\n"
"      end\n"
"    end\n"
"  end\n"
"  if #al > 0 then redis.call('HSET', ik(dst.id) .. ':al', unpack(al)) end\n"
"  local wl = redis.call('LRANGE', ik(src.id) .. ':why', '0', '-1')\n"
"  if #wl > 0 then\n"
"    local n = redis.call('RPUSH', ik(dst.id) .. ':why', unpack(wl))\n"
"    if n > MAXWHY then redis.call('LTRIM', ik(dst.id) .. ':why', NEGWHY, '-1') end\n"
"  end\n"
"  redis.call('DEL', ik(src.id) .. ':al', ik(src.id) .. ':why')\n"
"  dst.n = dst.n + src.n\n"
"  dst.nr = dst.nr + src.nr\n"
"  if src.fs > 0 and (dst.fs == 0 or src.fs < dst.fs) then dst.fs = src.fs end\n"
"  if src.ls > dst.ls then dst.ls = src.ls end\n"
"  if src.tal then title_from(dst, src.sev, src.ti, src.tal) end\n"
"  local count = 0\n"
"  if dst.mg then count = select(2, string.gsub(dst.mg, ',', ',')) + 1 end\n"
"  if count < 64 then\n"
"    if dst.mg then dst.mg = dst.mg .. ',' .. src.id else dst.mg = src.id end\n"
"  end\n"
"  if dst.st == 'new' then dst.st = 'active' end\n"
"  src.mi = dst.id src.st = 'closed' src.cb = 'merged' src.n = 0 src.nr = 0\n"
"end\n"
"\n"
"local function flush()\n"
"  for _, m in ipairs(changed) do\n"
"    local a = {'v', S(m.v), 'st', m.st, 'n', S(m.n), 'nr', S(m.nr),\n"
"               'fs', S(m.fs), 'ls', S(m.ls), 'sev', S(m.sev),\n"
"               'tsev', S(m.tsev), 'up', nowS}\n"
"    if m.tal then a[#a+1] = 'tal' a[#a+1] = m.tal a[#a+1] = 'ti' a[#a+1] = m.ti or '' end\n"
"    if m.mi then a[#a+1] = 'mi' a[#a+1] = m.mi end\n"
"    if m.cb then a[#a+1] = 'cb' a[#a+1] = m.cb end\n"
"    if m.mg then a[#a+1] = 'mg' a[#a+1] = m.mg end\n"
"    for i = 1, #m.extra do a[#a+1] = m.extra[i] end\n"
"    local refresh = now - m.ex > RET / 10\n"
"    if refresh then a[#a+1] = 'ex' a[#a+1] = nowS end\n"
"    redis.call('HSET', ik(m.id), unpack(a))\n"
"    if refresh then\n"
"      redis.call('PEXPIRE', ik(m.id), RETs)\n"
"      redis.call('PEXPIRE', ik(m.id) .. ':al', RETs)\n"
"      redis.call('PEXPIRE', ik(m.id) .. ':why', RETs)\n"
"    end\n"
"    redis.call('ZADD', OUT, nowS, m.id)\n"
"  end\n"
"end\n"
"\n"
"local function save_alert(inc)\n"
"  redis.call('SET', akey, chash .. '\\t' .. inc .. '\\t' .. ARGV[5] .. '\\t' .. S(res), 'PX', RETs)\n"
"end\n"
"\n"
"local function result(status, m, how, nn, nh, merges, skips)\n"
"  local ids = {}\n"
"  for i, c in ipairs(changed) do ids[i] = c.id end\n"
"  return {status, m.id, m.v, 1, how, ids, nn, nh, merges, skips}\n"
"end\n"
"\n"
"local IDX\n"
"if mode == 'selected' then IDX = P .. 's:' .. ns .. ':' else IDX = P .. 'e:' end\n"
"\n"
/* ---- 1. seen before: duplicate, stale or update ---------------------- */
"local rec = redis.call('GET', akey)\n"
"if rec then\n"
"  local h, inc, u, r = string.match(rec, '^([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)$')\n"
"  local m = h and resolve(inc)\n"
"  if m then\n"
"    if m.id ~= inc then\n"
"      redis.call('SET', akey, h .. '\\t' .. m.id .. '\\t' .. u .. '\\t' .. r, 'KEEPTTL')\n"
"    end\n"
"    full(m)\n"
"    if h == chash or upd < (tonumber(u) or 0) then\n"
"      local pend = 0\n"
"      if redis.call('ZSCORE', OUT, m.id) then pend = 1 end\n"
"      local st = 'dup'\n"
"      if h ~= chash then st = 'stale' end\n"
"      return {st, m.id, m.v, pend, 'dup', {}, {}, 0, 0, 0}\n"
"    end\n"
"    touch(m)\n"
"    redis.call('HSET', ik(m.id) .. ':al', aid, summary)\n"
"    m.nr = m.nr + (tonumber(r) or 0) - res\n"
"    if m.fs == 0 or t < m.fs then m.fs = t end\n"
"    if t > m.ls then m.ls = t end\n"
"    if m.tal == aid and sev < m.tsev then\n"
"      m.sev = 0 m.tal = nil\n"
"      local all = redis.call('HGETALL', ik(m.id) .. ':al')\n"
"      for i = 1, #all, 2 do\n"
"        local ok, d = pcall(cjson.decode, all[i + 1])\n"
"        if ok and type(d) == 'table' then\n"
"          title_from(m, tonumber(d.sn) or 0, tostring(d.title or ''), all[i])\n"
"        end\n"
"      end\n"
"    elseif m.tal == aid then\n"
"      m.ti = title m.tsev = sev\n"
"      if sev > m.sev then m.sev = sev end\n"
"    else\n"
"      title_from(m, sev, title, aid)\n"
"    end\n"
"    if m.st == 'new' then m.st = 'active' end\n"
"    status_from_alerts(m)\n"
"    push_why(m, {alert = aid, how = 'update', at = t, ts = now, incident = m.id})\n"
"    if mode ~= 'all' and not m.fl then\n"
"      for i = 1, NE do\n"
"        if ARGV[E0 + 2 * i] == 'c' then\n"
"          local key = IDX .. ARGV[E0 + 2 * i - 1]\n"
"          redis.call('ZADD', key, 'GT', tS, m.id)\n"
"          redis.call('PEXPIRE', key, ITTLs)\n"
"        end\n"
"      end\n"
"    end\n"
"    save_alert(m.id)\n"
"    flush()\n"
"    return result('updated', m, 'update', {}, 0, 0, 0)\n"
"  end\n"
"end\n"
"\n"
"local why = {alert = aid, at = t, ts = now, rule = rule, mode = mode}\n"
"local stop = {}\n"
"for i = 1, NE do\n"
"  if ARGV[E0 + 2 * i] == 's' then stop[#stop + 1] = ARGV[E0 + 2 * i - 1] end\n"
"end\n"
"if #stop > 0 then why.stoplisted = stop end\n"
"\n"
/* ---- 2. flood control ------------------------------------------------ */
"if fkey ~= '' and FLN > 0 then\n"
"  local fk = P .. 'f:' .. fkey\n"
"  local bw = math.max(1000, math.floor(FLW / 10))\n"
"  local b = math.floor(t / bw)\n"
"  local nb = math.ceil(FLW / bw)\n"
"  if redis.call('HINCRBY', fk, S(b), '1') == 1 then\n"
"    redis.call('PEXPIRE', fk, S(FLW * 3))\n"
"  end\n"
"  local all = redis.call('HGETALL', fk)\n"
"  local total, old = 0, {}\n"
"  for i = 1, #all, 2 do\n"
"    local bi = tonumber(all[i])\n"
"    if bi > b - nb and bi <= b then total = total + tonumber(all[i + 1])\n"
"    elseif bi <= b - 3 * nb then old[#old + 1] = all[i] end\n"
"  end\n"
"  if #old > 0 then redis.call('HDEL', fk, unpack(old)) end\n"
"  if total > FLN then\n"
"    local fo = P .. 'fo:' .. fkey\n"
"    local cur = redis.call('GET', fo)\n"
"    local m, prev, cont = nil, nil, nil\n"
"    if cur then\n"
"      local c = resolve(cur)\n"
"      if c then\n"
"        if c.st == 'closed' then prev = c.id\n"
"        elseif c.n >= MAXA then cont = c.id\n"
"        else m = c end\n"
"      end\n"
"    end\n"
"    if not m then\n"
"      local l = {'fl', flabel}\n"
"      if prev then l[#l + 1] = 'prev' l[#l + 1] = prev end\n"
"      if cont then l[#l + 1] = 'cont' l[#l + 1] = cont end\n"
"      m = create(l)\n"
"      m.fl = flabel\n"
"    end\n"
"    why.how = 'flood' why.incident = m.id why.flood = flabel\n"
"    why.previous = prev why.continued_from = cont\n"
"    add_alert(m, why)\n"
"    redis.call('SET', fo, m.id, 'PX', ARGV[20])\n"
"    save_alert(m.id)\n"
"    flush()\n"
"    return result('flood', m, 'flood', {}, 0, 0, 0)\n"
"  end\n"
"end\n"
"\n"
/* ---- 3. provider incident -------------------------------------------- */
"local target, how = nil, 'new'\n"
"local closed_best, full_best = nil, nil\n"
"local pk, pcur = nil, nil\n"
"if pid ~= '' then\n"
"  pk = P .. 'p:' .. pid\n"
"  local cur = redis.call('GET', pk)\n"
"  pcur = cur\n"
"  if cur then\n"
"    local c = resolve(cur)\n"
"    if c then c = follow(c) end\n"
"    if c then\n"
"      if c.st == 'closed' then closed_best = c\n"
"      elseif c.n >= MAXA then full_best = c\n"
"      else target = c how = 'provider' end\n"
"    end\n"
"  end\n"
"end\n"
"\n"
/* ---- 4. entity lookups (every mode keeps its index current) ---------- */
"local CAP = math.max(32, 2 * K + 8)\n"
"local NEGCAP = S(-(CAP + 1))\n"
"local function lookup(key, count_noisy)\n"
"  local c = {key = key, S = {}, list = {}, remap = {}, gone = {}}\n"
     /* At most K+1 members: enough to tell a noisy entity, and a hub
      * costs no more than an ordinary entity.  No scores: formatting
      * them costs more than the rest of the lookup. */
"  local lim = CAP\n"
"  if count_noisy and K > 0 then lim = K + 1 end\n"
"  local mems = redis.call('ZRANGEBYSCORE', key, S(t - W), S(t + W), 'LIMIT', '0', S(lim))\n"
"  c.count = #mems\n"
"  c.noisy = count_noisy and K > 0 and #mems > K\n"
"  if not c.noisy then\n"
"    for _, mem in ipairs(mems) do\n"
"      if string.byte(mem, 1) ~= 126 then\n"
"        local m = resolve(mem)\n"
"        if m then m = follow(m) end\n"
"        if not m then c.gone[#c.gone + 1] = mem\n"
"        else\n"
"          c.linked = true\n"
"          if m.id ~= mem then c.remap[#c.remap + 1] = mem end\n"
"          if m.st == 'closed' then\n"
"            if not closed_best or m.ls > closed_best.ls then closed_best = m end\n"
"          elseif not c.S[m.id] then\n"
"            c.S[m.id] = true\n"
"            c.list[#c.list + 1] = m\n"
"          end\n"
"        end\n"
"      end\n"
"    end\n"
"  end\n"
"  return c\n"
"end\n"
"\n"
"local corr = {}\n"
"local noisy_new, noisy_hits, noisy_keys = {}, 0, {}\n"
"if mode == 'all' then\n"
"  if ns ~= '' then\n"
"    local c = lookup(P .. 'g:' .. ns, false)\n"
"    c.k = 'group:' .. ns\n"
"    corr[1] = c\n"
"  end\n"
"else\n"
"  for i = 1, NE do\n"
"    if ARGV[E0 + 2 * i] == 'c' then\n"
"      local k = ARGV[E0 + 2 * i - 1]\n"
"      local c = lookup(IDX .. k, true)\n"
"      c.k = k\n"
"      if c.noisy then\n"
"        noisy_hits = noisy_hits + 1\n"
"        noisy_keys[#noisy_keys + 1] = k\n"
     /* Flagged when it crosses the threshold (an alert adds at most two
      * members), not on every later use. */
"        if c.count <= K + 3 and redis.call('HSETNX', P .. 'noisy', k, nowS) == 1 then\n"
"          noisy_new[#noisy_new + 1] = k\n"
"          redis.call('PEXPIRE', P .. 'noisy', RETs)\n"
"        end\n"
"      end\n"
"      corr[#corr + 1] = c\n"
"    end\n"
"  end\n"
"end\n"
"if #noisy_keys > 0 then why.noisy = noisy_keys end\n"
"\n"
/* ---- 5. choose: oldest open incident with room; merge the others ----- */
"local function older(a, b)\n"
"  if a.fs ~= b.fs then return a.fs < b.fs end\n"
"  return a.id < b.id\n"
"end\n"
"local cands, cnt = {}, {}\n"
"for _, c in ipairs(corr) do\n"
"  if not c.noisy then\n"
"    for _, m in ipairs(c.list) do\n"
"      if not cnt[m.id] then cnt[m.id] = 0 cands[#cands + 1] = m end\n"
"      cnt[m.id] = cnt[m.id] + 1\n"
"    end\n"
"  end\n"
"end\n"
"table.sort(cands, older)\n"
"if not target then\n"
"  for _, m in ipairs(cands) do\n"
"    if m.n < MAXA then target = m break end\n"
"  end\n"
"  if target then\n"
"    if mode == 'all' then how = 'group' else how = 'entity' end\n"
"  else\n"
"    for _, m in ipairs(cands) do\n"
"      if not full_best or older(full_best, m) then full_best = m end\n"
"    end\n"
"  end\n"
"end\n"
"if not target then\n"
"  local l = {}\n"
"  if closed_best then l[#l + 1] = 'prev' l[#l + 1] = closed_best.id why.previous = closed_best.id end\n"
"  if full_best then l[#l + 1] = 'cont' l[#l + 1] = full_best.id why.continued_from = full_best.id end\n"
"  target = create(l)\n"
"  if full_best then how = 'continuation' elseif closed_best then how = 'after_closed' end\n"
"  if full_best then redis.call('HSET', ik(full_best.id), 'nx', target.id) end\n"
"  if closed_best then redis.call('HSET', ik(closed_best.id), 'nx', target.id) end\n"
"end\n"
"local merges, skips, merged, skipped = 0, 0, {}, {}\n"
"if how == 'entity' then\n"
"  for _, m in ipairs(cands) do\n"
"    if m ~= target and not m.mi and m.n < MAXA then\n"
"      if target.n + m.n + 1 <= MAXA then\n"
"        local via = {}\n"
"        for _, c in ipairs(corr) do\n"
"          if not c.noisy and c.S[m.id] then via[#via + 1] = c.k end\n"
"        end\n"
"        merge(target, m)\n"
"        merges = merges + 1\n"
"        merged[#merged + 1] = {incident = m.id, via = via}\n"
"      else\n"
"        skips = skips + 1\n"
"        skipped[#skipped + 1] = m.id\n"
"      end\n"
"    end\n"
"  end\n"
"  if K > 0 then\n"
     /* Noisy detection.  An entity that joined this alert to an
      * incident counts a context when it bridged another incident the
      * rest of the alert points to, or when the alert also brought a
      * correlating entity never linked anywhere (it pulled in something
      * new).  More than K contexts in the window: noisy. */
"    local fresh = false\n"
"    for _, d in ipairs(corr) do\n"
"      if not d.noisy and #d.list == 0 and not d.linked then fresh = true break end\n"
"    end\n"
"    for _, c in ipairs(corr) do\n"
"      if not c.noisy and #c.list > 0 then\n"
"        for _, m in ipairs(cands) do\n"
"          local own = 0\n"
"          if c.S[m.id] then own = 1 end\n"
"          if cnt[m.id] - own > 0 and own == 0 then c.ctx = '~' .. m.id break end\n"
"        end\n"
"        if not c.ctx and fresh then c.ctx = '~' .. aid end\n"
"      end\n"
"    end\n"
"  end\n"
"end\n"
"\n"
/* ---- 6. index writes: bounded, pruned when they grow --------------- */
"for _, c in ipairs(corr) do\n"
"  local add = {'GT', tS, target.id}\n"
"  if c.ctx then add[#add + 1] = tS add[#add + 1] = c.ctx end\n"
"  for _, mem in ipairs(c.remap) do\n"
"    local root = resolve(mem)\n"
"    if root then root = follow(root) end\n"
"    local sc = redis.call('ZSCORE', c.key, mem)\n"
"    if root and sc then add[#add + 1] = sc add[#add + 1] = root.id end\n"
"    c.gone[#c.gone + 1] = mem\n"
"  end\n"

"  local added = redis.call('ZADD', c.key, unpack(add))\n"
"  if #c.gone > 0 then redis.call('ZREM', c.key, unpack(c.gone)) end\n"
     /* Members outside the window are invisible to lookups; drop them
      * (and cap the set) when it grows and already holds several, or on
      * one alert in eight (chosen by content hash: deterministic).  A
      * noisy entity grows with every alert: sampled only. */
"  if added > 0 and ((c.count >= 2 and not c.noisy) or sample) then\n"
"    redis.call('ZREMRANGEBYSCORE', c.key, '-inf', '(' .. S(t - 2 * W))\n"
"    redis.call('ZREMRANGEBYRANK', c.key, '0', NEGCAP)\n"
"  end\n"
     /* The key lives ITTL past its last use (a noisy entity is used so
      * often that a sample will do). */
"  if not c.noisy or sample then redis.call('PEXPIRE', c.key, ITTLs) end\n"
"end\n"
"\n"
/* ---- 7. add the alert, record why, publish through the outbox -------- */
"why.how = how\n"
"why.incident = target.id\n"
"local via = {}\n"
"for _, c in ipairs(corr) do\n"
"  if not c.noisy and c.S[target.id] then via[#via + 1] = c.k end\n"
"end\n"
"if #via > 0 then why.via = via end\n"
"if #merged > 0 then why.merged = merged end\n"
"if #skipped > 0 then why.merge_skipped = skipped end\n"
"if how == 'provider' then why.provider_incident = pid end\n"
"add_alert(target, why)\n"
"if pk and pcur ~= target.id then redis.call('SET', pk, target.id, 'PX', RETs) end\n"
"save_alert(target.id)\n"
"flush()\n"
"local status = 'joined'\n"
"if how == 'new' or how == 'continuation' or how == 'after_closed' then status = 'new' end\n"
"return result(status, target, how, noisy_new, noisy_hits, merges, skips)\n";

/*
 * ack: KEYS[1] = P.."out"; ARGV = P, then (incident, published version)
 * pairs.  Removes an incident from the outbox unless it changed again
 * after that version.  Returns how many were removed.
 */
const char corr_lua_ack[] =
"local n = 0\n"
"for i = 2, #ARGV - 1, 2 do\n"
"  local v = redis.call('HGET', ARGV[1] .. 'i:' .. ARGV[i], 'v')\n"
"  if not v or tonumber(v) <= tonumber(ARGV[i + 1]) then\n"
"    n = n + redis.call('ZREM', KEYS[1], ARGV[i])\n"
"  end\n"
"end\n"
"return n\n";

/*
 * status: KEYS[1] = P.."i:"..id; ARGV = P, id, closed|active, wall ms.
 * Pins the status (alert statuses no longer change it), bumps the
 * version and queues the snapshot (outbox score 0: due at once).
 * Returns {changed 0|1, version}; errors for unknown or merged incidents.
 */
const char corr_lua_status[] =
"local mk = KEYS[1]\n"
"if redis.call('EXISTS', mk) == 0 then\n"
"  return redis.error_reply('ERR socpilot: no such incident')\n"
"end\n"
"local mi = redis.call('HGET', mk, 'mi')\n"
"if mi then return redis.error_reply('ERR socpilot: incident was merged into ' .. mi) end\n"
"local st = redis.call('HGET', mk, 'st')\n"
"if st == ARGV[3] then return {0, tonumber(redis.call('HGET', mk, 'v'))} end\n"
"local v = redis.call('HINCRBY', mk, 'v', 1)\n"
"local cb = ''\n"
"if ARGV[3] == 'closed' then cb = 'cli' end\n"
"redis.call('HSET', mk, 'st', ARGV[3], 'cb', cb, 'pin', '1', 'up', ARGV[4])\n"
/* Reopened, it takes its own alerts again: forget the successor. */
"if ARGV[3] ~= 'closed' then redis.call('HDEL', mk, 'nx') end\n"
"local how = 'reopened'\n"
"if ARGV[3] == 'closed' then how = 'closed' end\n"
"redis.call('RPUSH', mk .. ':why', cjson.encode({how = how, ts = tonumber(ARGV[4]),\n"
"  incident = ARGV[2], by = 'cli'}))\n"
"redis.call('ZADD', ARGV[1] .. 'out', '0', ARGV[2])\n"
"return {1, v}\n";

/*
 * asm_add: KEYS[1] = P.."asm:"..alert; ARGV = P, alert, field, value,
 * wall ms, settle ms, max rows, ttl ms.  Stores one Defender row; the
 * assembly becomes due settle ms after its first row (or after the first
 * row that arrives once it was emitted).  Returns the new revision, 0
 * for a row already stored, -1 when the alert has max rows.
 */
const char corr_lua_asm_add[] =
"local k = KEYS[1]\n"
"local cur = redis.call('HGET', k, ARGV[3])\n"
"if cur == ARGV[4] then return 0 end\n"
"if not cur and redis.call('HLEN', k) >= tonumber(ARGV[7]) + 3 then return -1 end\n"
"redis.call('HSET', k, ARGV[3], ARGV[4])\n"
"redis.call('HSETNX', k, 't0', ARGV[5])\n"
"local rev = redis.call('HINCRBY', k, 'rev', 1)\n"
"redis.call('ZADD', ARGV[1] .. 'asmdue', 'NX', tonumber(ARGV[5]) + tonumber(ARGV[6]), ARGV[2])\n"
"redis.call('PEXPIRE', k, ARGV[8])\n"
"return rev\n";

/*
 * asm_take: KEYS[1] = P.."asmdue"; ARGV = P, wall ms, lease ms, limit.
 * Leases due assemblies (due again after the lease unless asm_done
 * removes them) and returns {{alert, {field, value...}}...}.
 */
const char corr_lua_asm_take[] =
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', '0', ARGV[4])\n"
"local out = {}\n"
"for _, id in ipairs(ids) do\n"
"  local h = redis.call('HGETALL', ARGV[1] .. 'asm:' .. id)\n"
"  if #h == 0 then\n"
"    redis.call('ZREM', KEYS[1], id)\n"
"  else\n"
"    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), id)\n"
"    out[#out + 1] = {id, h}\n"
"  end\n"
"end\n"
"return out\n";

/*
 * asm_done: KEYS[1] = P.."asmdue"; ARGV = P, alert, emitted revision (-1:
 * not emitted, try again after settle), wall ms, settle ms.  Called once
 * the emitted alert is acknowledged: removes the due entry unless rows
 * arrived meanwhile (then due again after settle).  Returns 1 done,
 * 2 rescheduled, 0 gone.
 */
const char corr_lua_asm_done[] =
"local k = ARGV[1] .. 'asm:' .. ARGV[2]\n"
"local rev = redis.call('HGET', k, 'rev')\n"
"if not rev then redis.call('ZREM', KEYS[1], ARGV[2]) return 0 end\n"
"local em = tonumber(ARGV[3])\n"
"if em >= 0 and tonumber(rev) <= em then\n"
"  redis.call('ZREM', KEYS[1], ARGV[2])\n"
"  redis.call('HSET', k, 'em', ARGV[3])\n"
"  return 1\n"
"end\n"
"redis.call('ZADD', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[5]), ARGV[2])\n"
"return 2\n";
