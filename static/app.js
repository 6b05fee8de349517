/*
 * Browser call page for the Telugu speech-to-speech voice agent.
 * Plain JavaScript, no build step, no external assets.
 *
 * Flow: microphone -> RTCPeerConnection (+ "events" data channel) -> wait for
 * ICE gathering -> POST /offer -> answer -> remote audio plays in <audio>.
 */
(() => {
  'use strict';

  // ---- Tunables (live: tests may change window.agentCall.config) ----------
  const config = {
    localSpeechThreshold: 0.015, // mic RMS that counts as speech (about -36 dBFS)
    remoteSpeechThreshold: 0.01, // remote RMS that counts as answer audio (about -40 dBFS)
    remoteQuietMs: 200,          // quiet needed before a remote rise counts as an onset
    pollMs: 10,                  // level polling period (setInterval works in background tabs)
    iceGatherTimeoutMs: 3000,    // fallback when gathering never reaches "complete"
    iceTransportPolicy: 'all',   // 'relay': TURN only (what a phone behind strict NAT gets)
    disconnectGraceMs: 2000,     // "disconnected" may recover; end the call if it does not
    maxRows: 200,                // latency rows and caption turns kept
    maxLogItems: 50,             // event log entries kept
  };

  // ---- Globals exposed for tests --------------------------------------------
  const agentCall = {
    pc: null,          // the current (or last) RTCPeerConnection
    events: [],        // every event object received on the data channel
    v2v: [],           // page-measured voice-to-voice figures, ms
    sessionId: null,
    levels: { local: 0, remote: 0 }, // latest RMS levels
    config,
  };
  window.agentCall = agentCall;

  // ---- API token -------------------------------------------------------------
  // A server started with an API token wants `Authorization: Bearer <token>` on calls, hang-ups
  // and /ice-config. Open the page as /#token=<token>: the fragment never reaches the server (or its
  // logs); the page keeps the token in memory and removes it from the address bar.
  const apiToken = (() => {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get('token');
    if (token !== null) {
      params.delete('token');
      const rest = params.toString();
      history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    }
    return token || null;
  })();

  // ---- Labels (Telugu / English) -------------------------------------------
  const STATUS_TEXT = {
    idle: 'సిద్ధం / Ready',
    mic: 'మైక్రోఫోన్ అడుగుతోంది… / Requesting microphone…',
    gathering: 'ICE సేకరిస్తోంది… / Gathering ICE candidates…',
    offering: 'సర్వర్‌కు పంపుతోంది… / Sending offer…',
    new: 'కొత్తది / New',
    checking: 'తనిఖీ చేస్తోంది… / Checking…',
    connecting: 'కలుపుతోంది… / Connecting…',
    connected: 'కలిసింది / Connected',
    disconnected: 'కనెక్షన్ తెగింది / Disconnected',
    failed: 'కనెక్షన్ విఫలమైంది / Connection failed',
    closed: 'కాల్ ముగిసింది / Call ended',
    error: 'లోపం / Error',
  };

  const VAD_TEXT = {
    idle: 'ఖాళీ / Idle',
    speaking: 'మాట్లాడుతున్నారు / Speaking',
    listening: 'వింటోంది / Listening',
    answering: 'సమాధానం / Answering',
  };

  const EMOTION_TEXT = {
    NEUTRAL: 'సాధారణం / Neutral',
    HAPPY: 'సంతోషం / Happy',
    LAUGH: 'నవ్వు / Laugh',
    EXCITED: 'ఉత్సాహం / Excited',
    EMPATHY: 'సానుభూతి / Empathy',
    SURPRISE: 'ఆశ్చర్యం / Surprise',
    THINKING: 'ఆలోచన / Thinking',
    TELUGU_ACCENT_HEAVY: 'బలమైన తెలుగు యాస / Heavy Telugu accent',
    TELUGU_ACCENT_MILD: 'తేలికపాటి తెలుగు యాస / Mild Telugu accent',
  };

  // Latency stages: [key, Telugu, English]. Unknown keys get a column too.
  const STAGES = [
    ['eot_wait', 'మాట ముగింపు నిరీక్షణ', 'End-of-turn wait'],
    ['respond', 'మొదటి సమాధాన ధ్వని', 'First answer audio ready'],
    ['playout_queue', 'అవుట్‌పుట్ క్యూ', 'Output queue'],
    ['send', 'ఎన్‌కోడ్ + పంపడం', 'Encode + send'],
    ['speech_end_to_rtp', 'సర్వర్ మొత్తం', 'Server total'],
    ['jitter_buffer', 'జిట్టర్ బఫర్', 'Receive jitter buffer'],
    ['ahead', 'ముందే మొదలైన సమాధానం', 'Answer started ahead (discarded)'],
  ];
  const AHEAD_KEY = 'ahead';
  const aheadDiscarded = new Map(); // turn -> answers started ahead and thrown away
  const V2V_KEY = 'voice_to_voice_ms';

  // ---- Elements -------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    call: $('call'),
    hangup: $('hangup'),
    speaker: $('speaker'),
    speakerDesc: $('speaker-desc'),
    emotion: $('emotion'),
    voiceClip: $('voice-clip'),
    myVoice: $('my-voice'),
    voiceState: $('voice-state'),
    responder: $('responder'),
    sessionId: $('session-id'),
    micLevel: $('mic-level'),
    remoteLevel: $('remote-level'),
    vadState: $('vad-state'),
    vadLabel: $('vad-label'),
    v2vLast: $('v2v-last'),
    captions: $('captions'),
    table: $('latency-table'),
    log: $('event-log'),
    audio: $('remote-audio'),
  };
  const tableHead = el.table.tHead.rows[0];
  const tableBody = el.table.tBodies[0];

  // ---- State ----------------------------------------------------------------
  let speakers = {};        // name -> description from /v1/options
  let current = null;       // the active call object, or null
  let audioCtx = null;      // one AudioContext for both analysers
  const columns = [];       // stage keys shown in the table, in order (V2V_KEY last)

  // Voice-to-voice measurement state (times from performance.now()).
  const meas = {
    lastLocalVoiceAt: null,  // last moment the mic was above the speech threshold
    remoteQuietSince: null,  // when the remote level last fell below threshold (null = loud)
    lastOnset: null,         // {t, used} last remote onset seen
    turnStartAt: null,       // when the latest speech_started arrived
    pending: null,           // {turn, speechEndAt} waiting for the answer onset
  };

  // ---- Small UI helpers -----------------------------------------------------
  function setStatus(state, detail) {
    const base = STATUS_TEXT[state] || state;
    el.status.textContent = detail ? `${base}: ${detail}` : base;
    el.status.dataset.state = state;
  }

  function setVad(state) {
    el.vadState.textContent = state;
    el.vadState.dataset.state = state;
    el.vadLabel.textContent = VAD_TEXT[state] || state;
    el.vadLabel.dataset.state = state;
  }

  function setInCall(inCall) {
    el.call.disabled = inCall;
    el.hangup.disabled = !inCall;
    el.speaker.disabled = inCall; // voice and emotion are fixed at offer time
    el.emotion.disabled = inCall;
    el.voiceClip.disabled = inCall;
    el.myVoice.disabled = inCall;
  }

  // ---- Zero-shot voice: a clip, or the caller's own voice -----------------------------
  const MAX_CLIP_BYTES = 1024 * 1024; // the server's limit (models/speech/clip.py)

  // The offer's `voice`: the chosen clip as base64, "caller", or null.
  async function chosenVoice() {
    if (el.myVoice.checked) return 'caller';
    const file = el.voiceClip.files && el.voiceClip.files[0];
    if (!file) return null;
    if (file.size > MAX_CLIP_BYTES) {
      throw new Error('స్వర నమూనా చాలా పెద్దది / Voice clip over 1 MiB');
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function onVoice(ev) {
    const source = ev.source === 'caller' ? 'మీ స్వరం / your voice' : 'నమూనా / clip';
    el.voiceState.dataset.state = ev.type;
    el.voiceState.textContent = ev.type === 'voice_ready'
      ? `స్వరం సిద్ధం / Voice ready: ${source}, ${fmtMs(ev.ms)} ms`
      : `స్వరం తీసుకోలేదు / Voice not taken: ${source} (${ev.reason || 'unknown'})`;
  }

  // RMS -> 0..1 on a -60..0 dBFS scale, for the meters.
  function meterValue(rms) {
    if (!(rms > 0)) return 0;
    const db = 20 * Math.log10(rms);
    return Math.min(1, Math.max(0, (db + 60) / 60));
  }

  function fmtMs(v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) return v == null ? '–' : String(v);
    return Math.abs(v) < 10 ? String(Math.round(v * 10) / 10) : String(Math.round(v));
  }

  // Pull a readable message out of an error response ({error, message, valid?}).
  async function errorMessage(res) {
    let text = '';
    try { text = await res.text(); } catch (_) { /* ignore */ }
    try {
      const body = JSON.parse(text);
      let msg = body.message || body.error || `HTTP ${res.status}`;
      const valid = Array.isArray(body.valid) ? body.valid.map(String) : [];
      if (valid.length && !valid.every((v) => msg.includes(v))) msg += ` (valid: ${valid.join(', ')})`;
      return msg;
    } catch (_) {
      return text.trim() || `HTTP ${res.status} ${res.statusText}`.trim();
    }
  }

  // ---- Options: voices and emotions -----------------------------------------
  function speakerLabel(name) {
    const m = /^(male|female)_(\d+)$/.exec(name);
    if (!m) return name;
    return m[1] === 'male' ? `పురుషుడు ${m[2]} / Male ${m[2]}` : `స్త్రీ ${m[2]} / Female ${m[2]}`;
  }

  function fillSelect(select, values, chosen, labelOf) {
    select.replaceChildren();
    for (const value of values) {
      const opt = document.createElement('option');
      opt.value = value;
      opt.textContent = labelOf(value);
      if (value === chosen) opt.selected = true;
      select.appendChild(opt);
    }
  }

  function showSpeakerDesc() {
    el.speakerDesc.textContent = speakers[el.speaker.value] || '';
  }

  async function loadOptions() {
    try {
      const res = await fetch('/v1/options', { cache: 'no-store' });
      if (!res.ok) throw new Error(await errorMessage(res));
      const opts = await res.json();
      speakers = opts.speakers || {};
      fillSelect(el.speaker, Object.keys(speakers), opts.default_speaker, speakerLabel);
      fillSelect(el.emotion, opts.emotions || [], opts.default_emotion, (e) => EMOTION_TEXT[e] || e);
      showSpeakerDesc();
      el.responder.textContent = opts.responder || '–';
    } catch (err) {
      // Calls still work with the server's defaults.
      setStatus('error', `options: ${err.message}`);
    }
  }

  async function loadIceConfig() {
    try {
      const res = await fetch('/ice-config', { cache: 'no-store', headers: authHeaders() });
      if (!res.ok) throw new Error(await errorMessage(res));
      const cfg = await res.json();
      return Array.isArray(cfg.iceServers) ? cfg.iceServers : [];
    } catch (err) {
      console.warn('ice-config unavailable, using host candidates only:', err);
      return [];
    }
  }

  // ---- Audio analysis ---------------------------------------------------------
  function ensureAudioContext() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!audioCtx || audioCtx.state === 'closed') audioCtx = new Ctx({ latencyHint: 'interactive' });
    if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    return audioCtx;
  }

  // An AnalyserNode on a stream (not connected to the speakers).
  function makeAnalyser(stream) {
    const ctx = ensureAudioContext();
    if (!ctx) return null;
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512; // ~10 ms at 48 kHz, matches the poll period
    analyser.smoothingTimeConstant = 0;
    source.connect(analyser);
    return { source, analyser, buf: new Float32Array(analyser.fftSize), bytes: null };
  }

  function releaseAnalyser(a) {
    if (!a) return;
    try { a.source.disconnect(); } catch (_) { /* ignore */ }
  }

  // RMS of the analyser's latest time-domain window (0..1).
  function rmsOf(a) {
    if (!a) return 0;
    const buf = a.buf;
    if (a.analyser.getFloatTimeDomainData) {
      a.analyser.getFloatTimeDomainData(buf);
    } else {
      a.bytes = a.bytes || new Uint8Array(buf.length);
      a.analyser.getByteTimeDomainData(a.bytes);
      for (let i = 0; i < buf.length; i++) buf[i] = (a.bytes[i] - 128) / 128;
    }
    let sum = 0;
    for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
    return Math.sqrt(sum / buf.length);
  }

  // Poll both levels every config.pollMs; drives meters and the v2v measurement.
  function tick(call) {
    const now = performance.now();
    const local = rmsOf(call.localAnalyser);
    const remote = rmsOf(call.remoteAnalyser);
    agentCall.levels.local = local;
    agentCall.levels.remote = remote;

    if (local >= config.localSpeechThreshold) meas.lastLocalVoiceAt = now;

    if (call.remoteAnalyser) {
      if (remote >= config.remoteSpeechThreshold) {
        // A rise after enough quiet is the start of an answer.
        if (meas.remoteQuietSince !== null && now - meas.remoteQuietSince >= config.remoteQuietMs) {
          onRemoteOnset(now);
        }
        meas.remoteQuietSince = null;
      } else if (meas.remoteQuietSince === null) {
        meas.remoteQuietSince = now;
      }
    }

    // Meters: skip DOM writes when nothing visible changed.
    const mv = meterValue(local);
    if (Math.abs(mv - el.micLevel.value) > 0.005) el.micLevel.value = mv;
    const rv = meterValue(remote);
    if (Math.abs(rv - el.remoteLevel.value) > 0.005) el.remoteLevel.value = rv;
  }

  // ---- Voice-to-voice measurement ---------------------------------------------
  function resetMeasurement() {
    meas.lastLocalVoiceAt = null;
    meas.remoteQuietSince = null;
    meas.lastOnset = null;
    meas.turnStartAt = null;
    meas.pending = null;
  }

  function onRemoteOnset(t) {
    meas.lastOnset = { t, used: false };
    if (meas.pending && t > meas.pending.speechEndAt) completeV2V(meas.lastOnset);
  }

  function onSpeechStopped(turn) {
    const end = meas.lastLocalVoiceAt;
    meas.pending = null;
    // No usable mic speech for this turn (too quiet for the page threshold).
    if (end === null || (meas.turnStartAt !== null && end < meas.turnStartAt - 1000)) return;
    meas.pending = { turn, speechEndAt: end };
    // The answer may already have started before this event arrived.
    const onset = meas.lastOnset;
    if (onset && !onset.used && onset.t > end) completeV2V(onset);
  }

  function completeV2V(onset) {
    const p = meas.pending;
    meas.pending = null;
    onset.used = true;
    const ms = Math.round(onset.t - p.speechEndAt);
    agentCall.v2v.push(ms);
    el.v2vLast.textContent = String(ms);
    const row = getRow(p.turn);
    const cell = cellFor(row, V2V_KEY);
    cell.classList.add('v2v');
    cell.textContent = String(ms);
  }

  // ---- Latency table ------------------------------------------------------------
  function headerCell(key, te, en) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.dataset.key = key;
    if (te) {
      const t = document.createElement('span');
      t.lang = 'te';
      t.textContent = te;
      th.append(t, ` / ${en}`, document.createElement('br'));
    }
    const code = document.createElement('code');
    code.textContent = key;
    th.appendChild(code);
    return th;
  }

  function buildTableHead() {
    tableHead.replaceChildren(headerCell('turn', 'మలుపు', 'Turn'));
    columns.length = 0;
    for (const [key, te, en] of STAGES) {
      columns.push(key);
      tableHead.appendChild(headerCell(key, te, en));
    }
    columns.push(V2V_KEY);
    const th = headerCell(V2V_KEY, 'స్వరం నుండి స్వరం (పేజీ)', 'Voice-to-voice (page)');
    th.classList.add('v2v-col');
    tableHead.appendChild(th);
  }

  // Add a column for a stage key we have not seen yet (before the v2v column).
  function ensureColumn(key) {
    if (columns.includes(key)) return;
    columns.splice(columns.length - 1, 0, key);
    const before = tableHead.querySelector(`th[data-key="${V2V_KEY}"]`);
    tableHead.insertBefore(headerCell(key, '', key), before);
    for (const row of tableBody.rows) {
      row.insertBefore(emptyCell(key), row.querySelector(`td[data-key="${V2V_KEY}"]`));
    }
  }

  function emptyCell(key) {
    const td = document.createElement('td');
    td.dataset.key = key;
    td.textContent = '–';
    return td;
  }

  function cellFor(row, key) {
    return row.querySelector(`td[data-key="${CSS.escape(key)}"]`);
  }

  // The row for a turn, created (newest on top) when missing.
  function getRow(turn) {
    const n = Number(turn);
    const existing = tableBody.querySelector(`tr[data-turn="${CSS.escape(String(turn))}"]`);
    if (existing) return existing;
    const row = document.createElement('tr');
    row.className = 'latency-row';
    row.dataset.turn = String(turn);
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = String(turn);
    row.appendChild(th);
    for (const key of columns) row.appendChild(emptyCell(key));
    // Keep rows sorted by turn, descending.
    let before = null;
    for (const r of tableBody.rows) {
      if (Number(r.dataset.turn) < n) { before = r; break; }
    }
    tableBody.insertBefore(row, before);
    while (tableBody.rows.length > config.maxRows) tableBody.deleteRow(-1);
    return row;
  }

  function onLatency(ev) {
    if (ev.turn == null) return;
    const stages = ev.stages && typeof ev.stages === 'object' ? ev.stages : {};
    for (const key of Object.keys(stages)) ensureColumn(key);
    const row = getRow(ev.turn);
    for (const [key, value] of Object.entries(stages)) {
      const cell = cellFor(row, key);
      cell.textContent = fmtMs(value);
      cell.classList.add('has-value');
    }
    if (typeof ev.ahead === 'boolean') showAhead(ev.turn, ev.ahead);
  }

  // answer_ahead events: {turn, outcome: 'used'|'discarded'|'stale'}; the turn's row shows
  // whether its answer was started ahead, and how many were thrown away before it.
  function onAnswerAhead(ev) {
    if (ev.turn == null || ev.outcome === 'used') return;
    aheadDiscarded.set(ev.turn, (aheadDiscarded.get(ev.turn) || 0) + 1);
    showAhead(ev.turn, null);
  }

  function showAhead(turn, used) {
    const cell = cellFor(getRow(turn), AHEAD_KEY);
    if (used !== null) cell.dataset.used = used ? 'yes' : 'no';
    const shown = cell.dataset.used === 'yes' ? 'ముందే / yes' : cell.dataset.used === 'no' ? 'no' : '–';
    cell.textContent = `${shown} (${aheadDiscarded.get(turn) || 0})`;
    cell.classList.add('has-value');
  }

  function clearLatencyTable() {
    tableBody.replaceChildren();
    aheadDiscarded.clear();
  }

  // ---- Captions -------------------------------------------------------------------------
  // caption events: {who: 'user'|'agent', turn, text, final, interrupted?}; partial ones
  // update the turn's line in place until the final one arrives.
  const WHO_TEXT = { user: 'మీరు / You', agent: 'ఏజెంట్ / Agent' };

  // The list item of a turn, created in turn order when missing.
  function captionTurn(turn) {
    const key = String(turn);
    const existing = el.captions.querySelector(`li[data-turn="${CSS.escape(key)}"]`);
    if (existing) return existing;
    const item = document.createElement('li');
    item.className = 'caption-turn';
    item.dataset.turn = key;
    let before = null;
    for (const other of el.captions.children) {
      if (Number(other.dataset.turn) > Number(turn)) { before = other; break; }
    }
    el.captions.insertBefore(item, before);
    while (el.captions.children.length > config.maxRows) el.captions.firstElementChild.remove();
    return item;
  }

  // One speaker's line in a turn's item: the user's first, then the agent's.
  function captionLine(item, who) {
    const existing = item.querySelector(`.caption[data-who="${who}"]`);
    if (existing) return existing;
    const line = document.createElement('p');
    line.className = 'caption';
    line.dataset.who = who;
    line.dataset.final = 'false';
    const label = document.createElement('span');
    label.className = 'who';
    label.textContent = WHO_TEXT[who];
    const text = document.createElement('span');
    text.className = 'text';
    text.lang = 'te';
    line.append(label, text);
    if (who === 'user') item.prepend(line); else item.append(line);
    return line;
  }

  function onCaption(ev) {
    if ((ev.who !== 'user' && ev.who !== 'agent') || ev.turn == null) return;
    if (typeof ev.text !== 'string') return;
    const line = captionLine(captionTurn(ev.turn), ev.who);
    if (line.dataset.final === 'true') return; // the final words stay
    line.querySelector('.text').textContent = ev.text;
    line.dataset.final = ev.final === true ? 'true' : 'false';
    line.classList.toggle('interrupted', ev.final === true && ev.interrupted === true);
    el.captions.scrollTop = el.captions.scrollHeight;
  }

  // ---- Data channel events ----------------------------------------------------------
  function logEvent(ev) {
    const li = document.createElement('li');
    li.textContent = JSON.stringify(ev);
    el.log.prepend(li);
    while (el.log.children.length > config.maxLogItems) el.log.lastElementChild.remove();
  }

  function onEvent(call, ev) {
    agentCall.events.push(ev);
    logEvent(ev);
    switch (ev.type) {
      case 'session':
        if (ev.session_id) {
          call.sessionId = call.sessionId || ev.session_id;
          agentCall.sessionId = call.sessionId;
          el.sessionId.textContent = call.sessionId;
        }
        if (el.vadState.dataset.state === 'idle') setVad('listening');
        break;
      case 'speech_started':
        meas.turnStartAt = performance.now();
        meas.pending = null; // an unanswered earlier turn is abandoned
        setVad('speaking');
        break;
      case 'speech_stopped':
        onSpeechStopped(ev.turn);
        setVad('listening');
        break;
      case 'response_started':
        setVad('answering');
        break;
      case 'response_done':
        if (ev.interrupted && ev.turn != null) getRow(ev.turn).classList.add('interrupted');
        if (el.vadState.dataset.state === 'answering') setVad('listening');
        break;
      case 'barge_in':
        setVad('speaking');
        break;
      case 'latency':
        onLatency(ev);
        break;
      case 'answer_ahead':
        onAnswerAhead(ev);
        break;
      case 'caption':
        onCaption(ev);
        break;
      case 'voice_ready':
      case 'voice_failed':
        onVoice(ev);
        break;
      default:
        break; // unknown events are still recorded in agentCall.events
    }
  }

  function onDataMessage(call, msg) {
    if (typeof msg.data !== 'string') return;
    let ev;
    try { ev = JSON.parse(msg.data); } catch (_) { return; }
    if (ev && typeof ev === 'object') onEvent(call, ev);
  }

  // ---- Call lifecycle ------------------------------------------------------------------
  // Resolve when ICE gathering completes, or after the timeout (no trickle ICE on the server).
  function waitIceGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        pc.removeEventListener('icecandidate', onCandidate);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const onCandidate = (e) => { if (!e.candidate) done(); }; // null candidate = end of gathering
      const timer = setTimeout(done, timeoutMs);
      pc.addEventListener('icegatheringstatechange', check);
      pc.addEventListener('icecandidate', onCandidate);
    });
  }

  // Headers of every API request: the token, when the page was opened with one.
  function authHeaders(extra = {}) {
    return apiToken ? { ...extra, Authorization: `Bearer ${apiToken}` } : extra;
  }

  // Hang up by the call's resource path (its id and a per-call secret, from the answer).
  function deleteSession(resource) {
    if (!resource) return;
    fetch(resource, { method: 'DELETE', keepalive: true, headers: authHeaders() })
      .catch(() => { /* the call may already be gone */ });
  }

  // Stop the mic, close the channel and the peer connection; safe to call twice.
  function release(call) {
    clearInterval(call.poll);
    clearTimeout(call.disconnectTimer);
    if (call.stream) for (const t of call.stream.getTracks()) t.stop();
    releaseAnalyser(call.localAnalyser);
    releaseAnalyser(call.remoteAnalyser);
    call.localAnalyser = call.remoteAnalyser = null;
    if (call.dc) { try { call.dc.close(); } catch (_) { /* ignore */ } }
    if (call.pc) { try { call.pc.close(); } catch (_) { /* ignore */ } }
  }

  // End a call: release everything, tell the server, reset the UI.
  function endCall(call, state, detail) {
    if (!call || call.ended) return;
    call.ended = true;
    if (current === call) current = null;
    deleteSession(call.resource); // before stopping the mic, so the server hears the hang-up first
    release(call);
    meas.pending = null;
    el.audio.srcObject = null;
    el.micLevel.value = 0;
    el.remoteLevel.value = 0;
    agentCall.levels.local = agentCall.levels.remote = 0;
    setVad('idle');
    setInCall(false);
    setStatus(state, detail);
  }

  function onRemoteTrack(call, e) {
    if (call.ended || e.track.kind !== 'audio') return;
    const stream = (e.streams && e.streams[0]) || new MediaStream([e.track]);
    // Chromium only feeds remote WebRTC audio to Web Audio when it is also played by an element.
    el.audio.srcObject = stream;
    const p = el.audio.play();
    if (p && p.catch) p.catch(() => { /* autoplay may need the click; it was a click */ });
    releaseAnalyser(call.remoteAnalyser);
    call.remoteAnalyser = makeAnalyser(stream);
    meas.remoteQuietSince = performance.now();
  }

  // Firefox before connectionState: map the ICE state instead.
  function connState(pc) {
    if (pc.connectionState) return pc.connectionState;
    const ice = pc.iceConnectionState;
    if (ice === 'completed') return 'connected';
    if (ice === 'checking') return 'connecting';
    return ice;
  }

  function onStateChange(call) {
    if (call.ended) return;
    const pc = call.pc;
    const state = connState(pc);
    el.status.dataset.ice = pc.iceConnectionState;
    if (state === call.lastState) return;
    call.lastState = state;
    switch (state) {
      case 'connected':
        clearTimeout(call.disconnectTimer);
        call.connected = true;
        setStatus('connected');
        if (el.vadState.dataset.state === 'idle') setVad('listening');
        break;
      case 'disconnected':
        setStatus('disconnected');
        clearTimeout(call.disconnectTimer);
        call.disconnectTimer = setTimeout(() => {
          if (connState(pc) === 'disconnected') endCall(call, 'disconnected');
        }, config.disconnectGraceMs);
        break;
      case 'failed':
        endCall(call, 'failed');
        break;
      case 'closed':
        endCall(call, 'closed');
        break;
      default:
        setStatus(state);
    }
  }

  async function startCall() {
    if (current) return;
    const call = {
      pc: null, dc: null, stream: null, sessionId: null, resource: null,
      localAnalyser: null, remoteAnalyser: null,
      poll: null, disconnectTimer: null, lastState: null,
      connected: false, ended: false,
    };
    current = call;
    agentCall.sessionId = null;
    // a new call starts with no figures from the last one
    agentCall.events.length = 0;
    agentCall.v2v.length = 0;
    el.v2vLast.textContent = '–';
    el.sessionId.textContent = '–';
    resetMeasurement();
    clearLatencyTable();
    el.captions.replaceChildren();
    setInCall(true);
    ensureAudioContext(); // create/resume inside the click (autoplay policy)

    try {
      setStatus('mic');
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new Error('మైక్రోఫోన్ అందుబాటులో లేదు / Microphone not available (HTTPS or localhost needed)');
      }
      try {
        call.stream = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
          video: false,
        });
      } catch (err) {
        if (err && err.name === 'NotAllowedError') {
          throw new Error('మైక్రోఫోన్ అనుమతి నిరాకరించబడింది / Microphone permission denied');
        }
        throw err;
      }
      if (call.ended) return release(call);

      const iceServers = await loadIceConfig();
      if (call.ended) return release(call);

      const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: config.iceTransportPolicy });
      call.pc = pc;
      agentCall.pc = pc;
      pc.addEventListener('connectionstatechange', () => onStateChange(call));
      pc.addEventListener('iceconnectionstatechange', () => onStateChange(call));
      pc.addEventListener('track', (e) => onRemoteTrack(call, e));

      // The page opens the events channel itself, before the offer.
      const dc = pc.createDataChannel('events');
      call.dc = dc;
      dc.addEventListener('message', (m) => onDataMessage(call, m));
      dc.addEventListener('close', () => {
        // The server closed the channel: the call is over.
        if (!call.ended && call.connected) endCall(call, 'closed');
      });

      for (const track of call.stream.getAudioTracks()) pc.addTrack(track, call.stream);

      // Levels for the meter and the voice-to-voice measurement.
      call.localAnalyser = makeAnalyser(call.stream);
      call.poll = setInterval(() => tick(call), config.pollMs);

      setStatus('gathering');
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await waitIceGathering(pc, config.iceGatherTimeoutMs);
      if (call.ended) return release(call);

      setStatus('offering');
      const body = { sdp: pc.localDescription.sdp, type: 'offer' };
      if (el.speaker.value) body.speaker = el.speaker.value;
      if (el.emotion.value) body.emotion = el.emotion.value;
      const voice = await chosenVoice();
      if (voice) body.voice = voice;
      el.voiceState.textContent = voice === 'caller'
        ? 'మీ స్వరం కోసం వింటోంది / Listening for your voice…' : '';
      const res = await fetch('/offer', {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify(body),
      });
      if (!res.ok) throw new Error(await errorMessage(res));
      const answer = await res.json();

      call.sessionId = answer.session_id || null;
      call.resource = answer.resource || null;
      if (call.ended) { deleteSession(call.resource); return release(call); } // hung up meanwhile
      agentCall.sessionId = call.sessionId;
      el.sessionId.textContent = call.sessionId || '–';

      await pc.setRemoteDescription({ type: answer.type || 'answer', sdp: answer.sdp });
      if (!call.ended) onStateChange(call);
    } catch (err) {
      console.error(err);
      if (!call.ended) endCall(call, 'error', (err && err.message) || String(err));
      else release(call);
    }
  }

  function hangUp() {
    if (current) endCall(current, 'closed');
  }

  // ---- Wire up ------------------------------------------------------------------------
  buildTableHead();
  setVad('idle');
  setInCall(false);
  el.call.addEventListener('click', startCall);
  el.hangup.addEventListener('click', hangUp);
  el.speaker.addEventListener('change', showSpeakerDesc);
  // one voice at a time: a clip or the caller's own
  el.myVoice.addEventListener('change', () => { if (el.myVoice.checked) el.voiceClip.value = ''; });
  el.voiceClip.addEventListener('change', () => { if (el.voiceClip.files.length) el.myVoice.checked = false; });
  // Leaving the page hangs up (keepalive DELETE).
  window.addEventListener('pagehide', hangUp);
  if (!window.RTCPeerConnection) {
    setStatus('error', 'WebRTC లేదు / This browser has no WebRTC');
    el.call.disabled = true;
  }
  loadOptions();
})();
