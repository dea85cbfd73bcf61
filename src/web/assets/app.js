/* ticket — the seat-booking page. Plain ES2020, no dependencies, nothing fetched from
 * elsewhere. Everything lives inside this closure: nothing is added to window.
 *
 * Data flow: a GET gives a snapshot (seats + applied_index); a server-sent-event stream,
 * read with fetch() so it can carry the bearer token, then delivers changes after that
 * index. Our own writes patch the map at once; the stream confirms them a moment later.
 *
 * Checkout: a hold keeps seats for a while; the page counts its time down against the
 * cluster's clock (GET /api/holds says the node's now_ms), not the browser's. When a hold
 * lapses the cluster frees its seats and the stream shows them free. */
(() => {
  'use strict';

  // ---------------------------------------------------------------- constants

  const SESSION_KEY = 'ticket.session';
  const EVENT_KEY = 'ticket.event';
  const DEFAULT_EVENT = 'demo';

  const RETRY_DELAYS_MS = [500, 1000, 1500]; // three retries over about 3 s
  const REQUEST_TIMEOUT_MS = 10000;
  const ASK_TIMEOUT_MS = 60000; // a language-model backend can be slow
  const BACKOFF_START_MS = 300;
  const BACKOFF_MAX_MS = 2000;
  // The server sends a keep-alive comment every 15 s; silence for much longer than that
  // means a dead connection that the browser has not noticed yet.
  const STREAM_IDLE_MS = 45000;
  const CLUSTER_POLL_MS = 2000;
  const LAG_WARN = 5; // entries behind the leader before a node counts as lagging
  const INFO_CLEAR_MS = 10000;
  const COUNTDOWN_TICK_MS = 250;
  // Once a hold's time is up the cluster frees it within about a second; look again then.
  const EXPIRED_RECHECK_MS = 1500;
  const HOLD_WARN_MS = 60000; // say so once when a hold has a minute left
  const SEATS_PER_REQUEST_MAX = 16;

  const TEXT_RETRYING = 'The cluster is unreachable right now; retrying…';
  const TEXT_GAVE_UP = 'The cluster is unreachable right now. Please try again in a moment.';
  const TEXT_EXPIRED = 'Your session has expired. Please log in again.';
  const TEXT_RECONNECTING = 'Live updates reconnecting…';

  const STATUS_WORD = {
    free: 'free',
    taken: 'taken',
    mine: 'yours',
    held: 'held by someone',
    held_by_you: 'held by you',
  };
  const SEAT_STATUSES = new Set(Object.keys(STATUS_WORD));
  // Category colours in the map; more categories than this reuse them, the legend still names each.
  const CATEGORY_COLOURS = 6;

  // ---------------------------------------------------------------- state

  const state = {
    // session
    token: null,
    user: null,
    role: null,
    // events and the seat map of the current one
    events: [],
    eventsLoaded: false,
    currentEvent: null,
    eventInfo: null,
    seats: new Map(), // id -> seat object
    seatsLoaded: false,
    seatIndex: 0, // applied_index the seat map reflects
    seatGen: 0, // bumped on every event switch / auth change, so stale answers are dropped
    grid: [], // rows of seat ids, in display order
    seatPos: new Map(), // id -> [row, column] in grid
    seatButtons: new Map(), // id -> button
    selected: new Set(),
    rovingSeat: null, // the one seat with tabindex=0
    busy: false,
    // streams and timers
    seatWatch: null,
    clusterWatch: null,
    clusterPoll: 0,
    clusterPollInFlight: false,
    bookingsTimer: 0,
    // checkout
    holds: null, // the caller's live holds, null when logged out
    clockOffsetMs: 0, // the cluster's clock minus the browser's
    clockKnown: false,
    countdownTimer: 0,
    holdsTimer: 0,
    holdWarned: new Set(), // hold ids already warned about
    holdRechecked: new Set(), // hold ids whose expiry already asked for a fresh list
    ticketsTimer: 0,
    // ask
    proposal: null,
  };

  // ---------------------------------------------------------------- small helpers

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  /** Builds an element; children that are strings become text nodes (never parsed as HTML). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** Resolves after ms, or at once when signal aborts. */
  function sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal && signal.aborted) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        if (signal) signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (signal) signal.addEventListener('abort', done, { once: true });
    });
  }

  /** 24 hex characters, made once per user action so a retry of it reserves only once. */
  // The page's writes carry the ids of one client session, ~SESSION.SEQ.ACKED in hex: the
  // cluster keeps each answer until a later id says it has arrived (ACKED is the lowest
  // number still awaited), so a retry is recognised however busy the cluster is.
  const requestSession = {
    id: Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join(''),
    next: 1,
    awaited: new Set(),
  };

  function newRequestId() {
    const seq = requestSession.next;
    requestSession.next += 1;
    requestSession.awaited.add(seq);
    const acked = Math.min(...requestSession.awaited);
    return `~${requestSession.id}.${seq.toString(16)}.${acked.toString(16)}`;
  }

  /** The call that used requestId has ended: its answer is no longer awaited. */
  function requestAnswered(requestId) {
    const parts = typeof requestId === 'string' ? requestId.split('.') : [];
    if (parts.length === 3) requestSession.awaited.delete(parseInt(parts[1], 16));
  }

  function plural(n, word, many = `${word}s`) {
    return `${n} ${n === 1 ? word : many}`;
  }

  function storageGet(key) {
    try {
      return sessionStorage.getItem(key);
    } catch (_) {
      return null; // storage can be disabled; the page still works for this visit
    }
  }

  function storageSet(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch (_) {
      /* ignore */
    }
  }

  // ---------------------------------------------------------------- messages

  let infoTimer = 0;

  /** One message area: role=alert for errors (announced at once), role=status for notices. */
  function showMessage(text, kind) {
    const box = $('message');
    clearTimeout(infoTimer);
    // Emptying first makes screen readers announce a repeated message again.
    box.textContent = '';
    box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    box.dataset.kind = kind;
    box.textContent = text;
    if (kind === 'info' && text) infoTimer = setTimeout(clearMessage, INFO_CLEAR_MS);
  }

  function showInfo(text) {
    showMessage(text, 'info');
  }

  function showError(err) {
    if (err && err.handled) return; // already reported (an expired session)
    const text = typeof err === 'string' ? err : (err && err.message) || 'Something went wrong.';
    showMessage(text, 'error');
  }

  function clearMessage() {
    clearTimeout(infoTimer);
    const box = $('message');
    box.textContent = '';
    box.setAttribute('role', 'status');
    box.dataset.kind = 'info';
  }

  function clearRetryMessage() {
    if ($('message').textContent === TEXT_RETRYING) clearMessage();
  }

  // ---------------------------------------------------------------- the JSON API

  class ApiError extends Error {
    constructor(message, { status = 0, code = '', handled = false } = {}) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.code = code;
      this.handled = handled;
    }
  }

  /** Words for a refusal whose body carried no message: never a bare status code. */
  function fallbackMessage(status) {
    if (status === 400) return 'The request was not accepted.';
    if (status === 401) return 'Please log in first.';
    if (status === 403) return 'You are not allowed to do that.';
    if (status === 404) return 'That was not found.';
    if (status === 409) return 'That is no longer possible: the seats have changed.';
    if (status === 429) return 'Too many requests; please wait a moment.';
    return 'Something went wrong on the server.';
  }

  function authHeaders(extra) {
    const headers = Object.assign({}, extra);
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    return headers;
  }

  /** One HTTP exchange with a timeout covering the body too. Throws on network failure. */
  async function fetchJson(path, init, timeoutMs) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const resp = await fetch(path, Object.assign({}, init, { signal: ctl.signal }));
      const text = await resp.text();
      let data = null;
      try {
        data = text ? JSON.parse(text) : null;
      } catch (_) {
        data = null;
      }
      return { status: resp.status, ok: resp.ok, data };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Calls the API. Network failures and 503s are retried with the very same body (so the
   * same request_id) up to three times; other refusals throw an ApiError carrying the
   * server's own message. A 401 for a logged-in user ends the session here, once.
   * opts.quiet: a background call, which shows nothing while retrying.
   */
  async function api(method, path, body, opts = {}) {
    try {
      return await callApi(method, path, body, opts);
    } finally {
      if (body && body.request_id) requestAnswered(body.request_id);
    }
  }

  async function callApi(method, path, body, opts) {
    const quiet = Boolean(opts.quiet);
    const retries = opts.retries === undefined ? RETRY_DELAYS_MS.length : opts.retries;
    const timeoutMs = opts.timeoutMs || REQUEST_TIMEOUT_MS;
    const sentToken = state.token;
    const init = {
      method,
      cache: 'no-store',
      headers: authHeaders({ Accept: 'application/json' }),
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body); // serialised once: every retry sends the same bytes
    }

    let retried = false;
    for (let attempt = 0; ; attempt += 1) {
      let reply = null;
      try {
        reply = await fetchJson(path, init, timeoutMs);
      } catch (_) {
        reply = null; // network failure or timeout
      }
      const transient = !reply || reply.status === 502 || reply.status === 503 || reply.status === 504;
      if (!transient) {
        if (retried) clearRetryMessage();
        return handleReply(reply, sentToken);
      }
      if (attempt >= retries) {
        if (retried) clearRetryMessage();
        throw new ApiError(TEXT_GAVE_UP, { status: reply ? reply.status : 0, code: 'UNAVAILABLE' });
      }
      if (!quiet) {
        showMessage(TEXT_RETRYING, 'error');
        retried = true;
      }
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
  }

  function handleReply(reply, sentToken) {
    const data = reply.data;
    if (reply.ok) return data || {};
    const code = data && typeof data.code === 'string' ? data.code : '';
    if (reply.status === 401 && sentToken && sentToken === state.token) {
      expireSession();
      throw new ApiError(TEXT_EXPIRED, { status: 401, code, handled: true });
    }
    const message =
      data && typeof data.error === 'string' && data.error.trim()
        ? data.error
        : fallbackMessage(reply.status);
    throw new ApiError(message, { status: reply.status, code });
  }

  // ---------------------------------------------------------------- server-sent events

  /**
   * Reads an SSE body: messages are separated by a blank line; `event:` names one and
   * `data:` lines carry it; lines starting with ':' are comments (keep-alives).
   * onChunk is called for every chunk of bytes, so the caller can track liveness.
   */
  async function readSse(body, onEvent, onChunk) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let eventName = '';
    let dataLines = [];

    const dispatch = () => {
      if (dataLines.length) onEvent(eventName || 'message', dataLines.join('\n'));
      eventName = '';
      dataLines = [];
    };

    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onChunk();
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          dispatch();
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') eventName = val;
        else if (field === 'data') dataLines.push(val);
      }
    }
  }

  /**
   * One connection of a stream. Resolves {stop:true, status, message} when the server
   * refuses for good (401/403/404), and {stop:false} when the stream ended or failed and
   * should be reopened.
   */
  async function connectOnce(url, eventName, outerSignal, handlers) {
    const ctl = new AbortController();
    const abortInner = () => ctl.abort();
    outerSignal.addEventListener('abort', abortInner, { once: true });
    let idleTimer = 0;
    const bumpIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => ctl.abort(), STREAM_IDLE_MS);
    };
    try {
      bumpIdle();
      const resp = await fetch(url, {
        headers: authHeaders({ Accept: 'text/event-stream' }),
        cache: 'no-store',
        signal: ctl.signal,
      });
      if (resp.status === 401 || resp.status === 403 || resp.status === 404) {
        let message = '';
        try {
          const data = await resp.json();
          message = data && typeof data.error === 'string' ? data.error : '';
        } catch (_) {
          /* no body */
        }
        return { stop: true, status: resp.status, message };
      }
      if (!resp.ok || !resp.body) return { stop: false };
      let live = false;
      await readSse(
        resp.body,
        (name, data) => {
          if (name !== eventName) return; // e.g. a final `error` event: we simply reconnect
          let parsed;
          try {
            parsed = JSON.parse(data);
          } catch (_) {
            return;
          }
          handlers.onMessage(parsed);
        },
        () => {
          bumpIdle();
          if (!live) {
            live = true;
            handlers.onLive();
          }
        }
      );
      return { stop: false };
    } catch (_) {
      return { stop: false };
    } finally {
      clearTimeout(idleTimer);
      outerSignal.removeEventListener('abort', abortInner);
    }
  }

  /**
   * Keeps a stream open: reconnects after 300 ms, doubling to 2 s, until aborted through
   * the returned AbortController. url is a function so each reconnect resumes from the
   * latest index.
   */
  function openStream({ url, eventName, onMessage, onLive, onDown, onStop }) {
    const outer = new AbortController();
    let backoff = BACKOFF_START_MS;
    const handlers = {
      onMessage: (data) => {
        backoff = BACKOFF_START_MS;
        onMessage(data);
      },
      onLive: () => onLive(),
    };
    (async () => {
      while (!outer.signal.aborted) {
        const result = await connectOnce(url(), eventName, outer.signal, handlers);
        if (outer.signal.aborted) return;
        if (result.stop) {
          onStop(result);
          return;
        }
        onDown();
        await sleep(backoff, outer.signal);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    })();
    return outer;
  }

  // ---------------------------------------------------------------- session

  /** expires_at may be seconds, milliseconds or a date string; 0 means "unknown". */
  function parseExpiry(value) {
    if (typeof value === 'number' && Number.isFinite(value)) return value < 1e11 ? value * 1000 : value;
    if (typeof value === 'string' && value) {
      if (/^\d+$/.test(value)) return parseExpiry(Number(value));
      const t = Date.parse(value);
      return Number.isFinite(t) ? t : 0;
    }
    return 0;
  }

  function restoreSession() {
    const raw = storageGet(SESSION_KEY);
    if (!raw) return;
    try {
      const saved = JSON.parse(raw);
      if (!saved || typeof saved.token !== 'string' || !saved.token) return;
      const expiry = parseExpiry(saved.expires_at);
      if (expiry && expiry <= Date.now()) {
        storageSet(SESSION_KEY, null);
        return;
      }
      state.token = saved.token;
      state.user = typeof saved.user === 'string' ? saved.user : '';
      state.role = saved.role === 'admin' ? 'admin' : 'customer';
    } catch (_) {
      storageSet(SESSION_KEY, null);
    }
  }

  function startSession(reply) {
    state.token = reply.token;
    state.user = reply.user || '';
    state.role = reply.role === 'admin' ? 'admin' : 'customer';
    storageSet(
      SESSION_KEY,
      JSON.stringify({ token: state.token, user: state.user, role: state.role, expires_at: reply.expires_at })
    );
  }

  function clearSession() {
    state.token = null;
    state.user = null;
    state.role = null;
    storageSet(SESSION_KEY, null);
  }

  /** The server no longer accepts our token: say so and show the login form. */
  function expireSession() {
    if (!state.token) return; // several calls can fail at once; report it once
    const user = state.user;
    clearSession();
    showError(TEXT_EXPIRED);
    $('login-user').value = user || '';
    onAuthChanged();
    const active = document.activeElement;
    if (!active || active === document.body || !active.matches('input, select, textarea')) {
      $(user ? 'login-password' : 'login-user').focus();
    }
  }

  /** Shows or hides what depends on being logged in. */
  function applyAuthUi() {
    const loggedIn = Boolean(state.token);
    $('whoami').textContent = loggedIn ? state.user || '(unnamed)' : 'not logged in';
    $('role-badge').hidden = !(loggedIn && state.role === 'admin');
    $('logout-button').hidden = !loggedIn;
    $('account-panel').hidden = loggedIn;
    $('login-form').hidden = loggedIn;
    $('signup-form').hidden = loggedIn;
    $('bookings-heading').textContent = loggedIn && state.role === 'admin' ? 'Bookings' : 'My bookings';
    updateActions();
  }

  async function onLoginSubmit(event) {
    event.preventDefault();
    const user = $('login-user').value.trim();
    const password = $('login-password').value;
    if (!user || !password) {
      showError('Enter your user name and password.');
      $(user ? 'login-password' : 'login-user').focus();
      return;
    }
    const button = $('login-button');
    button.disabled = true;
    try {
      const reply = await api('POST', '/api/login', { user, password });
      if (!reply || typeof reply.token !== 'string') throw new ApiError('The server sent no token.');
      startSession(reply);
      $('login-password').value = '';
      showInfo(`Logged in as ${state.user}.`);
      await onAuthChanged();
      $('event-picker').focus();
    } catch (err) {
      showError(err);
      $('login-password').select();
    } finally {
      button.disabled = false;
    }
  }

  /** Sign-up: a new customer, logged in at once (the reply is a login's). */
  async function onSignupSubmit(event) {
    event.preventDefault();
    const user = $('signup-user').value.trim();
    const password = $('signup-password').value;
    if (!user || !password) {
      showError('Choose a user name and a password.');
      $(user ? 'signup-password' : 'signup-user').focus();
      return;
    }
    const button = $('signup-button');
    button.disabled = true;
    try {
      // No retry on a lost answer: a second try would find the name taken by the first.
      const reply = await api('POST', '/api/register', { user, password }, { retries: 0 });
      if (!reply || typeof reply.token !== 'string') throw new ApiError('The server sent no token.');
      startSession(reply);
      $('signup-password').value = '';
      $('signup-user').value = '';
      showInfo(`Welcome, ${state.user}: you are signed up and logged in.`);
      await onAuthChanged();
      $('event-picker').focus();
    } catch (err) {
      showError(err);
      $(err.status === 409 ? 'signup-user' : 'signup-password').select();
    } finally {
      button.disabled = false;
    }
  }

  async function onLogout() {
    clearSession();
    showInfo('You have logged out.');
    await onAuthChanged();
    $('login-user').focus();
  }

  /** Log in, log out or expiry: everything personal is reloaded and the streams restarted. */
  async function onAuthChanged() {
    applyAuthUi();
    resetAsk();
    renderBookings(null);
    state.clockKnown = false;
    renderHolds(null);
    renderTickets(null);
    restartClusterWatch();
    await loadEvents();
    await switchEvent(state.currentEvent || pickInitialEvent(), { force: true });
    refreshBookings();
    refreshHolds();
    refreshTickets();
  }

  // ---------------------------------------------------------------- events

  function optionLabel(ev) {
    return typeof ev.free === 'number' ? `${ev.name} (${ev.free} free)` : ev.name;
  }

  async function loadEvents(opts = {}) {
    try {
      const reply = await api('GET', '/api/events', undefined, opts);
      state.events = Array.isArray(reply.events) ? reply.events.filter((e) => e && typeof e.name === 'string') : [];
      state.eventsLoaded = true;
      renderEventPicker();
      return true;
    } catch (err) {
      if (err.status === 401 && !state.token) {
        showSeatPlaceholder('Log in to see the events and their seats.');
      } else if (!opts.quiet) {
        showError(err);
      }
      renderEventPicker();
      return false;
    }
  }

  /** Rebuilds the picker; an event that is not in the list (say, from the URL) stays listed. */
  function renderEventPicker() {
    const picker = $('event-picker');
    picker.textContent = '';
    for (const ev of state.events) {
      picker.append(el('option', { value: ev.name }, optionLabel(ev)));
    }
    const current = state.currentEvent;
    if (current && !state.events.some((e) => e.name === current)) {
      picker.append(el('option', { value: current }, current));
    }
    if (!picker.options.length) {
      picker.append(el('option', { value: '' }, 'No events'));
      picker.disabled = true;
    } else {
      picker.disabled = false;
    }
    if (current) picker.value = current;
  }

  /** The event named in the URL (#event=NAME), if any. */
  function eventFromHash() {
    const match = /^#event=(.+)$/.exec(location.hash);
    if (!match) return null;
    try {
      return decodeURIComponent(match[1]) || null;
    } catch (_) {
      return null;
    }
  }

  function pickInitialEvent() {
    const fromHash = eventFromHash();
    if (fromHash) return fromHash;
    const names = state.events.map((e) => e.name);
    const remembered = storageGet(EVENT_KEY);
    if (remembered && names.includes(remembered)) return remembered;
    if (names.includes(DEFAULT_EVENT)) return DEFAULT_EVENT;
    if (names.length) return names[0];
    // The list could not be loaded (the cluster may be down): try the demo event, whose
    // stream will fill the map once the cluster answers.
    return state.eventsLoaded ? null : DEFAULT_EVENT;
  }

  function rememberEvent(name) {
    storageSet(EVENT_KEY, name);
    const hash = `#event=${enc(name)}`;
    if (location.hash !== hash) {
      try {
        history.replaceState(null, '', hash);
      } catch (_) {
        /* e.g. a sandboxed frame */
      }
    }
  }

  /** Shows another event (or the same one again after log in/out): snapshot, then stream. */
  async function switchEvent(name, { force = false } = {}) {
    if (!force && name === state.currentEvent && state.seatsLoaded) return;
    stopSeatWatch();
    const gen = ++state.seatGen;
    state.currentEvent = name || null;
    state.eventInfo = null;
    state.seats = new Map();
    state.seatsLoaded = false;
    state.seatIndex = 0;
    state.selected.clear();
    state.rovingSeat = null;
    hideLiveNotice();
    renderEventPicker();
    renderEventSummary();
    renderCategories();
    if (!name) {
      showSeatPlaceholder(state.eventsLoaded ? 'There are no events yet.' : 'The events could not be loaded.');
      return;
    }
    rememberEvent(name);
    showSeatPlaceholder('Loading seats…');
    const outcome = await loadSeats(gen);
    // A missing event or a refused login has nothing to stream; a cluster that is down
    // does, so the stream is opened anyway and fills the map once the cluster answers.
    if (gen === state.seatGen && outcome !== 'missing' && outcome !== 'refused') startSeatWatch(gen);
  }

  // ---------------------------------------------------------------- seats

  function normalizeSeat(raw) {
    const id = String(raw.id);
    const row = raw.row !== undefined && raw.row !== null && raw.row !== '' ? String(raw.row) : /^\D*/.exec(id)[0] || '?';
    // A status this page does not know is taken: a seat is never offered as free on a guess.
    const status = SEAT_STATUSES.has(raw.status) ? raw.status : 'taken';
    const seat = { id, row, status };
    if (raw.holder) seat.holder = String(raw.holder);
    if (raw.booking_id) seat.booking_id = String(raw.booking_id);
    if (raw.category) seat.category = String(raw.category);
    if (Number(raw.price_minor) > 0) seat.price_minor = Number(raw.price_minor);
    if (raw.hold_id) seat.hold_id = String(raw.hold_id);
    if (Number(raw.hold_expires_at_ms) > 0) seat.hold_expires_at_ms = Number(raw.hold_expires_at_ms);
    return seat;
  }

  /** Free and yours can be selected (to reserve or hold, to cancel); the rest cannot. */
  function selectable(seat) {
    return seat.status === 'free' || seat.status === 'mine';
  }

  /** GETs the seat map. Returns 'ok', 'missing' (404), 'refused' (401/403) or 'failed'. */
  async function loadSeats(gen, opts = {}) {
    const name = state.currentEvent;
    try {
      const reply = await api('GET', `/api/events/${enc(name)}/seats`, undefined, opts);
      if (gen !== state.seatGen) return 'ok';
      const index = Number(reply.applied_index) || 0;
      // The stream may already have shown us something newer than this snapshot.
      if (state.seatsLoaded && index < state.seatIndex) return 'ok';
      applySnapshot(reply.event, Array.isArray(reply.seats) ? reply.seats : [], index);
      return 'ok';
    } catch (err) {
      if (gen !== state.seatGen) return 'failed';
      if (err.status === 404) {
        showSeatPlaceholder(`There is no event called “${name}”. Pick another one above.`);
        showError(err);
        return 'missing';
      }
      if (err.status === 401 || err.status === 403) {
        showSeatPlaceholder(state.token ? 'You may not see this event.' : 'Log in to see the seats.');
        if (state.token) showError(err);
        return 'refused';
      }
      if (!opts.quiet) {
        showSeatPlaceholder('The seats could not be loaded yet; waiting for the cluster…');
        showError(err);
      }
      return 'failed';
    }
  }

  /** Replaces the whole map (a GET, or a stream message with reset=true). */
  function applySnapshot(event, seats, index) {
    if (event && typeof event === 'object') state.eventInfo = event;
    state.seats = new Map();
    for (const raw of seats) {
      if (raw && raw.id !== undefined) {
        const seat = normalizeSeat(raw);
        state.seats.set(seat.id, seat);
      }
    }
    state.seatIndex = index;
    state.seatsLoaded = true;
    for (const id of [...state.selected]) {
      const seat = state.seats.get(id);
      if (!seat || !selectable(seat)) state.selected.delete(id);
    }
    renderCategories();
    renderSeatMap();
    updateFreeCount();
  }

  /** A stream message: the whole map when reset, else only the seats that changed. */
  function applySeatMessage(msg) {
    if (!msg || !Array.isArray(msg.seats)) return;
    const index = Number(msg.applied_index) || 0;
    if (msg.reset) {
      applySnapshot(null, msg.seats, index);
      if (state.token) {
        scheduleBookingsRefresh();
        scheduleHoldsRefresh();
        scheduleTicketsRefresh();
      }
      return;
    }
    // Changes up to the snapshot's index are already in the map.
    if (state.seatsLoaded && index && index <= state.seatIndex) return;
    let touchedMine = false;
    let touchedHeld = false;
    let newSeat = false;
    for (const raw of msg.seats) {
      if (!raw || raw.id === undefined) continue;
      const seat = normalizeSeat(raw);
      const prev = state.seats.get(seat.id);
      if (!prev) newSeat = true;
      if (seat.status === 'mine' || (prev && prev.status === 'mine')) touchedMine = true;
      // A hold of ours made elsewhere (the shell, a script), confirmed, or lapsed.
      if (seat.status === 'held_by_you' || (prev && prev.status === 'held_by_you')) touchedHeld = true;
      state.seats.set(seat.id, seat);
      if (prev && prev.status !== seat.status) onSeatStatusChanged(seat, prev);
    }
    state.seatIndex = Math.max(state.seatIndex, index);
    if (newSeat || !state.seatsLoaded) {
      state.seatsLoaded = true;
      renderSeatMap();
    } else {
      for (const raw of msg.seats) if (raw && raw.id !== undefined) updateSeatButton(String(raw.id));
    }
    updateFreeCount();
    updateActions();
    if (touchedMine && state.token) {
      scheduleBookingsRefresh();
      scheduleTicketsRefresh();
    }
    if (touchedHeld && state.token) scheduleHoldsRefresh();
  }

  /** A seat changed under the user's selection: its meaning changed, so unselect it. */
  function onSeatStatusChanged(seat, prev) {
    if (!state.selected.has(seat.id)) return;
    state.selected.delete(seat.id);
    if (prev.status !== 'free') return;
    if (seat.status === 'taken') showInfo(`Seat ${seat.id} was just reserved by someone else.`);
    else if (seat.status === 'held') showInfo(`Seat ${seat.id} was just held by someone else.`);
  }

  /**
   * Patches seats after one of our own writes, before the stream confirms it. extra: the
   * booking or hold the seats are now in ({ bookingId } or { holdId, expiresAtMs }).
   */
  function patchSeats(eventName, ids, status, extra = {}) {
    if (eventName && eventName !== state.currentEvent) return;
    for (const id of ids) {
      const seat = state.seats.get(id);
      if (!seat) continue;
      const next = { id: seat.id, row: seat.row, status };
      if (seat.category) next.category = seat.category;
      if (seat.price_minor) next.price_minor = seat.price_minor;
      if (status === 'mine' || status === 'held_by_you') next.holder = state.user;
      if (status === 'mine' && extra.bookingId) next.booking_id = extra.bookingId;
      if (status === 'held_by_you' && extra.holdId) {
        next.hold_id = extra.holdId;
        if (extra.expiresAtMs) next.hold_expires_at_ms = extra.expiresAtMs;
      }
      state.seats.set(id, next);
      state.selected.delete(id);
      updateSeatButton(id);
    }
    updateFreeCount();
    updateActions();
  }

  function seatNumber(seat) {
    const match = /(\d+)\s*$/.exec(seat.id);
    return match ? Number(match[1]) : NaN;
  }

  /** Rows A..Z then AA..; seats by number, so S10 comes after S9. */
  function groupRows() {
    const rows = new Map();
    for (const seat of state.seats.values()) {
      if (!rows.has(seat.row)) rows.set(seat.row, []);
      rows.get(seat.row).push(seat);
    }
    const bySeat = (a, b) => {
      const na = seatNumber(a);
      const nb = seatNumber(b);
      if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
      return a.id.localeCompare(b.id);
    };
    return [...rows.keys()]
      .sort((a, b) => a.length - b.length || a.localeCompare(b))
      .map((label) => ({ label, seats: rows.get(label).sort(bySeat).map((s) => s.id) }));
  }

  function showSeatPlaceholder(text) {
    const map = $('seat-map');
    map.textContent = '';
    map.append(el('p', { class: 'placeholder' }, text));
    state.grid = [];
    state.seatPos = new Map();
    state.seatButtons = new Map();
    updateActions();
  }

  /** Rebuilds the map's buttons, keeping keyboard focus on the same seat. */
  function renderSeatMap() {
    const map = $('seat-map');
    const active = document.activeElement;
    const focusedSeat = active && map.contains(active) && active.dataset ? active.dataset.seat : null;
    const rows = groupRows();
    if (!rows.length) {
      showSeatPlaceholder('This event has no seats.');
      renderEventSummary();
      return;
    }
    if (!state.rovingSeat || !state.seats.has(state.rovingSeat)) state.rovingSeat = rows[0].seats[0];
    if (sameLayout(rows)) {
      // Same seats in the same places: update the buttons in place rather than replacing
      // them, so a click that lands during an update is not lost.
      for (const id of state.seatButtons.keys()) updateSeatButton(id);
      renderEventSummary();
      updateActions();
      return;
    }
    state.grid = rows.map((r) => r.seats);
    state.seatPos = new Map();
    state.seatButtons = new Map();

    const fragment = document.createDocumentFragment();
    rows.forEach((row, r) => {
      const seatsBox = el('div', { class: 'row-seats' });
      row.seats.forEach((id, c) => {
        state.seatPos.set(id, [r, c]);
        seatsBox.append(makeSeatButton(id, row.label));
      });
      fragment.append(
        el(
          'div',
          { class: 'seat-row', role: 'group', 'aria-label': `Row ${row.label}`, 'data-row': row.label },
          el('span', { class: 'row-label', 'aria-hidden': 'true' }, row.label),
          seatsBox
        )
      );
    });
    map.textContent = '';
    map.append(fragment);
    map.setAttribute('aria-label', `Seat map for ${state.currentEvent}`);
    if (focusedSeat && state.seatButtons.has(focusedSeat)) state.seatButtons.get(focusedSeat).focus();
    renderEventSummary();
    updateActions();
  }

  function sameLayout(rows) {
    if (!state.seatButtons.size || rows.length !== state.grid.length) return false;
    return rows.every(
      (row, r) => row.seats.length === state.grid[r].length && row.seats.every((id, c) => state.grid[r][c] === id)
    );
  }

  function makeSeatButton(id, rowLabel) {
    // Within a row only the number is shown; the row label starts the line.
    const shown = id.startsWith(rowLabel) && id.length > rowLabel.length ? id.slice(rowLabel.length) : id;
    const button = el('button', { type: 'button', class: 'seat', 'data-seat': id }, el('span', { class: 'seat-num' }, shown));
    state.seatButtons.set(id, button);
    updateSeatButton(id);
    return button;
  }

  /** Brings one button in line with its seat's status, category and selection. */
  function updateSeatButton(id) {
    const seat = state.seats.get(id);
    const button = state.seatButtons.get(id);
    if (!seat || !button) return;
    button.dataset.status = seat.status;
    const colour = categoryColour(seat.category);
    if (colour === null) delete button.dataset.category;
    else button.dataset.category = String(colour);
    const price = seatPriceText(seat);
    button.setAttribute('aria-label', `Seat ${id}, ${STATUS_WORD[seat.status]}${price ? `, ${price}` : ''}`);
    button.setAttribute('aria-pressed', state.selected.has(id) ? 'true' : 'false');
    // aria-disabled rather than disabled: a seat that cannot be chosen stays reachable by keyboard.
    if (!selectable(seat)) button.setAttribute('aria-disabled', 'true');
    else button.removeAttribute('aria-disabled');
    button.title = seatTitle(seat) + (price ? ` · ${price}` : '');
    button.tabIndex = id === state.rovingSeat ? 0 : -1;
  }

  function seatTitle(seat) {
    switch (seat.status) {
      case 'taken':
        return seat.holder ? `Taken by ${seat.holder}` : 'Taken';
      case 'mine':
        return seat.booking_id ? `Yours (booking ${seat.booking_id})` : 'Yours';
      case 'held':
        return seat.holder ? `Held by ${seat.holder} in checkout` : 'Held by someone in checkout';
      case 'held_by_you':
        return seat.hold_id ? `Held by you (hold ${seat.hold_id})` : 'Held by you';
      default:
        return 'Free';
    }
  }

  // ---------------------------------------------------------------- categories and prices

  /** 8000 and EUR: "80.00 EUR", as the shell writes it; nothing without a currency. */
  function priceText(minor, currency) {
    const n = Number(minor);
    if (!currency || !Number.isFinite(n) || n < 0) return '';
    const whole = Math.floor(n / 100);
    const cents = String(n % 100).padStart(2, '0');
    return `${whole}.${cents} ${currency}`;
  }

  function eventCategories() {
    const info = currentEventInfo();
    return info && Array.isArray(info.categories) ? info.categories.filter((c) => c && typeof c.name === 'string') : [];
  }

  function eventCurrency() {
    const info = currentEventInfo();
    return info && typeof info.currency === 'string' ? info.currency : '';
  }

  /** The colour slot of a category (its place in the event's list, best first), or null. */
  function categoryColour(name) {
    if (!name) return null;
    const at = eventCategories().findIndex((c) => c.name === name);
    return at < 0 ? null : at % CATEGORY_COLOURS;
  }

  function seatPriceText(seat) {
    const price = seat.price_minor ? priceText(seat.price_minor, eventCurrency()) : '';
    if (seat.category && price) return `${seat.category}, ${price}`;
    return seat.category || price;
  }

  /** The legend's entry per category with its price, and the best-seats category choice. */
  function renderCategories() {
    const categories = eventCategories();
    const currency = eventCurrency();
    const legend = $('category-legend');
    legend.textContent = '';
    categories.forEach((c, at) => {
      const price = priceText(c.price_minor, currency);
      const limit = c.max_seats_per_user ? ` · at most ${c.max_seats_per_user} a person` : '';
      legend.append(
        el(
          'li',
          { 'data-category-name': c.name },
          el('span', { class: 'swatch category-swatch', 'data-category': at % CATEGORY_COLOURS, 'aria-hidden': 'true' }),
          el('span', {}, el('span', { class: 'category-name' }, c.name), (price ? ` · ${price}` : '') + limit)
        )
      );
    });
    legend.hidden = categories.length === 0;

    const picker = $('best-category');
    const chosen = picker.value;
    picker.textContent = '';
    picker.append(el('option', { value: '' }, 'Any category'));
    for (const c of categories) {
      const price = priceText(c.price_minor, currency);
      picker.append(el('option', { value: c.name }, price ? `${c.name} (${price})` : c.name));
    }
    if (categories.some((c) => c.name === chosen)) picker.value = chosen;
    $('best-category-field').hidden = categories.length === 0;
    const info = currentEventInfo();
    const limit = Number(info && info.max_seats_per_user) || SEATS_PER_REQUEST_MAX;
    $('best-count').max = String(Math.min(limit, SEATS_PER_REQUEST_MAX));
  }

  function setRovingSeat(id) {
    if (state.rovingSeat === id) return;
    const old = state.seatButtons.get(state.rovingSeat);
    if (old) old.tabIndex = -1;
    state.rovingSeat = id;
    const now = state.seatButtons.get(id);
    if (now) now.tabIndex = 0;
  }

  function focusSeat(id) {
    setRovingSeat(id);
    const button = state.seatButtons.get(id);
    if (button) button.focus();
  }

  function toggleSeat(id) {
    const seat = state.seats.get(id);
    if (!seat) return;
    setRovingSeat(id);
    if (seat.status === 'held_by_you') {
      showInfo(`Seat ${id} is in your hold ${seat.hold_id || ''}: confirm or release it under Your holds.`);
      return;
    }
    if (!selectable(seat)) {
      showInfo(`Seat ${id} is ${STATUS_WORD[seat.status]}.`);
      return;
    }
    if (state.selected.has(id)) state.selected.delete(id);
    else state.selected.add(id);
    updateSeatButton(id);
    updateActions();
  }

  function clearSelection() {
    const ids = [...state.selected];
    state.selected.clear();
    for (const id of ids) updateSeatButton(id);
    updateActions();
  }

  function onSeatClick(event) {
    const button = event.target.closest('button.seat');
    if (button && $('seat-map').contains(button)) toggleSeat(button.dataset.seat);
  }

  /** Arrow keys move focus between seats; Home/End jump within a row (Ctrl: whole map). */
  function onSeatKeydown(event) {
    const button = event.target.closest('button.seat');
    if (!button) return;
    if (event.key === 'Escape') {
      if (state.selected.size) {
        clearSelection();
        event.preventDefault();
      }
      return;
    }
    const pos = state.seatPos.get(button.dataset.seat);
    if (!pos) return;
    let [r, c] = pos;
    const grid = state.grid;
    switch (event.key) {
      case 'ArrowLeft':
        c -= 1;
        break;
      case 'ArrowRight':
        c += 1;
        break;
      case 'ArrowUp':
        r -= 1;
        break;
      case 'ArrowDown':
        r += 1;
        break;
      case 'Home':
        if (event.ctrlKey) r = 0;
        c = 0;
        break;
      case 'End':
        if (event.ctrlKey) r = grid.length - 1;
        c = Infinity;
        break;
      default:
        return;
    }
    event.preventDefault();
    r = Math.max(0, Math.min(grid.length - 1, r));
    c = Math.max(0, Math.min(grid[r].length - 1, c)); // rows may differ in length
    focusSeat(grid[r][c]);
  }

  function onSeatFocusIn(event) {
    const button = event.target.closest('button.seat');
    if (button) setRovingSeat(button.dataset.seat);
  }

  /** Selected seats with the given status, in map order. */
  function selectedWith(status) {
    const out = [];
    for (const row of state.grid) {
      for (const id of row) {
        const seat = state.seats.get(id);
        if (state.selected.has(id) && seat && seat.status === status) out.push(id);
      }
    }
    return out;
  }

  /** " (160.00 EUR together)" for priced seats; nothing in an event without prices. */
  function selectedTotalText(ids) {
    const currency = eventCurrency();
    if (!currency) return '';
    let total = 0;
    for (const id of ids) total += (state.seats.get(id) || {}).price_minor || 0;
    return ` (${priceText(total, currency)}${ids.length > 1 ? ' together' : ''})`;
  }

  function currentEventInfo() {
    return state.eventInfo || state.events.find((e) => e.name === state.currentEvent) || null;
  }

  function updateActions() {
    const loggedIn = Boolean(state.token);
    const free = selectedWith('free');
    const mine = selectedWith('mine');
    $('hold-button').disabled = !loggedIn || state.busy || free.length === 0;
    $('reserve-button').disabled = !loggedIn || state.busy || free.length === 0;
    $('cancel-button').disabled = !loggedIn || state.busy || mine.length === 0;
    $('best-button').disabled = !loggedIn || state.busy || !state.currentEvent;

    let text;
    if (!loggedIn) text = 'Log in to hold or reserve seats.';
    else if (!free.length && !mine.length) text = 'Select free seats to hold or reserve, or your seats to cancel.';
    else {
      const parts = [];
      if (free.length) parts.push(`to hold or reserve: ${free.join(', ')}${selectedTotalText(free)}`);
      if (mine.length) parts.push(`to cancel: ${mine.join(', ')}`);
      text = `Selected ${parts.join('; ')}.`;
      const info = currentEventInfo();
      const limit = info && Number(info.max_seats_per_user);
      if (limit && free.length) {
        let mine = 0;
        for (const seat of state.seats.values()) if (seat.status === 'mine' || seat.status === 'held_by_you') mine += 1;
        if (mine + free.length > limit) text += ` That is more than the ${plural(limit, 'seat')} one person may reserve.`;
      }
    }
    $('selection-summary').textContent = text;
  }

  /** Counts from the live map, so the picker and summary never lag behind the seats. */
  function updateFreeCount() {
    if (!state.seatsLoaded) return;
    let free = 0;
    for (const seat of state.seats.values()) if (seat.status === 'free') free += 1;
    const ev = state.events.find((e) => e.name === state.currentEvent);
    if (ev) {
      ev.free = free;
      ev.taken = state.seats.size - free;
      const option = [...$('event-picker').options].find((o) => o.value === ev.name);
      if (option) option.textContent = optionLabel(ev);
    }
    renderEventSummary();
  }

  function renderEventSummary() {
    const box = $('event-summary');
    if (!state.currentEvent || !state.seatsLoaded || !state.seats.size) {
      box.textContent = '';
      return;
    }
    let free = 0;
    let mine = 0;
    let held = 0;
    for (const seat of state.seats.values()) {
      if (seat.status === 'free') free += 1;
      else if (seat.status === 'mine') mine += 1;
      else if (seat.status === 'held_by_you') held += 1;
    }
    const parts = [`${free} of ${plural(state.seats.size, 'seat')} free`];
    if (mine) parts.push(`${mine} yours`);
    if (held) parts.push(`${held} held by you`);
    const info = currentEventInfo();
    const limit = info && Number(info.max_seats_per_user);
    if (limit) parts.push(`up to ${limit} per person`);
    box.textContent = parts.join(' · ');
  }

  // ---------------------------------------------------------------- seat stream

  function showLiveNotice() {
    const box = $('live-notice');
    if (box.textContent !== TEXT_RECONNECTING) box.textContent = TEXT_RECONNECTING;
  }

  function hideLiveNotice() {
    $('live-notice').textContent = '';
  }

  function stopSeatWatch() {
    if (state.seatWatch) state.seatWatch.abort();
    state.seatWatch = null;
  }

  function startSeatWatch(gen) {
    stopSeatWatch();
    const name = state.currentEvent;
    const sentToken = state.token;
    state.seatWatch = openStream({
      url: () => `/api/events/${enc(name)}/watch?from=${state.seatIndex}`,
      eventName: 'seats',
      onMessage: (msg) => {
        if (gen !== state.seatGen) return;
        hideLiveNotice();
        applySeatMessage(msg);
        // The first update after the cluster came back: pick up the event list too.
        if (!state.eventsLoaded) loadEvents({ quiet: true, retries: 0 });
      },
      onLive: () => {
        if (gen === state.seatGen) hideLiveNotice();
      },
      onDown: () => {
        if (gen === state.seatGen) showLiveNotice();
      },
      onStop: (result) => {
        if (gen !== state.seatGen) return;
        hideLiveNotice();
        if (result.status === 401 && sentToken && sentToken === state.token) {
          expireSession();
        } else if (result.status === 404) {
          showSeatPlaceholder(`There is no event called “${name}”. Pick another one above.`);
          showError(result.message || `There is no event called “${name}”.`);
        } else if (!state.token) {
          showSeatPlaceholder('Log in to see the seats.');
        } else {
          showError(result.message || 'Live updates were refused for this event.');
        }
      },
    });
  }

  // ---------------------------------------------------------------- reserve and cancel

  function setBusy(busy) {
    state.busy = busy;
    $('seat-map-panel').setAttribute('aria-busy', busy ? 'true' : 'false');
    updateActions();
  }

  /** A disabled button loses focus; put it back somewhere sensible. */
  function restoreFocusAfterAction(button) {
    if (button.disabled && (document.activeElement === button || document.activeElement === document.body)) {
      const seat = state.seatButtons.get(state.rovingSeat);
      if (seat) seat.focus();
    }
  }

  /** After any change we made: bookings, holds, tickets, free counts and a fresh snapshot (quietly). */
  function afterChange() {
    refreshBookings();
    refreshHolds();
    refreshTickets();
    loadEvents({ quiet: true, retries: 0 });
    if (state.currentEvent) loadSeats(state.seatGen, { quiet: true, retries: 0 });
  }

  async function reserveSelected() {
    const seats = selectedWith('free');
    if (!seats.length || state.busy || !state.token) return;
    const name = state.currentEvent;
    const body = { seats, request_id: newRequestId() };
    setBusy(true);
    try {
      const reply = await api('POST', `/api/events/${enc(name)}/reserve`, body);
      const booking = reply.booking || {};
      const booked = Array.isArray(booking.seats) && booking.seats.length ? booking.seats.map(String) : seats;
      patchSeats(booking.event || name, booked, 'mine', { bookingId: booking.id });
      clearSelection();
      showInfo(`Reserved ${booked.join(', ')}${booking.id ? ` (booking ${booking.id})` : ''}.`);
      afterChange();
    } catch (err) {
      showError(err);
      // The map may be out of date (someone was faster): refresh it.
      if (err.status === 409 || err.code === 'FAILED_PRECONDITION') loadSeats(state.seatGen, { quiet: true, retries: 0 });
    } finally {
      setBusy(false);
      restoreFocusAfterAction($('reserve-button'));
    }
  }

  async function cancelSelected() {
    const seats = selectedWith('mine');
    if (!seats.length || state.busy || !state.token) return;
    const name = state.currentEvent;
    const body = { seats, request_id: newRequestId() };
    setBusy(true);
    try {
      const reply = await api('POST', `/api/events/${enc(name)}/cancel`, body);
      const freed = Array.isArray(reply.seats) && reply.seats.length ? reply.seats.map(String) : seats;
      patchSeats(reply.event || name, freed, 'free');
      clearSelection();
      showInfo(`Cancelled ${freed.join(', ')}.`);
      afterChange();
    } catch (err) {
      showError(err);
      if (err.status === 409 || err.code === 'FAILED_PRECONDITION') loadSeats(state.seatGen, { quiet: true, retries: 0 });
    } finally {
      setBusy(false);
      restoreFocusAfterAction($('cancel-button'));
    }
  }

  // ---------------------------------------------------------------- bookings

  function scheduleBookingsRefresh() {
    // A burst of stream updates becomes one request.
    clearTimeout(state.bookingsTimer);
    state.bookingsTimer = setTimeout(refreshBookings, 250);
  }

  async function refreshBookings() {
    clearTimeout(state.bookingsTimer);
    const token = state.token;
    if (!token) {
      renderBookings(null);
      return;
    }
    try {
      const reply = await api('GET', '/api/bookings', undefined, { quiet: true, retries: 1 });
      if (token !== state.token) return;
      renderBookings(Array.isArray(reply.bookings) ? reply.bookings : []);
    } catch (err) {
      if (!err.handled && token === state.token) {
        $('bookings-empty').hidden = false;
        $('bookings-empty').textContent = 'Your bookings could not be loaded right now.';
      }
    }
  }

  function bookingPrice(booking) {
    const price = Number(booking.total_minor) > 0 ? priceText(booking.total_minor, booking.currency) : '';
    return price ? ` · ${price}` : '';
  }

  /** list null means "logged out". */
  function renderBookings(list) {
    const ul = $('bookings');
    const hadFocus = ul.contains(document.activeElement);
    ul.textContent = '';
    const empty = $('bookings-empty');
    if (!list) {
      empty.hidden = false;
      empty.textContent = 'Log in to see your bookings.';
      return;
    }
    for (const booking of list) {
      if (!booking || booking.id === undefined) continue;
      const id = String(booking.id);
      const seats = Array.isArray(booking.seats) ? booking.seats.join(', ') : '';
      const others = booking.user && state.user && booking.user !== state.user;
      const created = Number(booking.created_at_ms);
      const title = [
        others ? `Reserved by ${booking.user}` : null,
        created ? `Reserved ${new Date(created).toLocaleString()}` : null,
      ]
        .filter(Boolean)
        .join(' · ');
      ul.append(
        el(
          'li',
          { 'data-booking': id, 'data-event': booking.event, title: title || null },
          el('span', { class: 'booking-text' }, `${id}: ${seats} (${booking.event})${bookingPrice(booking)}`),
          el(
            'button',
            {
              type: 'button',
              class: 'btn btn-small cancel-booking',
              'data-booking': id,
              'aria-label': `Cancel booking ${id}${others ? ` of ${booking.user}` : ''}`,
            },
            'Cancel'
          )
        )
      );
    }
    empty.hidden = ul.children.length > 0;
    empty.textContent = 'No bookings yet.';
    if (hadFocus) {
      // The focused row may be gone: keep the keyboard user inside the list.
      const next = ul.querySelector('.cancel-booking');
      (next || $('bookings-heading')).focus();
    }
  }

  async function cancelBooking(id, button) {
    button.disabled = true;
    const body = { request_id: newRequestId() };
    try {
      const reply = await api('POST', `/api/bookings/${enc(id)}/cancel`, body);
      const freed = Array.isArray(reply.seats) ? reply.seats.map(String) : [];
      if (reply.event) patchSeats(reply.event, freed, 'free');
      showInfo(`Cancelled booking ${id}${freed.length ? ` (${freed.join(', ')})` : ''}.`);
      afterChange();
    } catch (err) {
      showError(err);
      button.disabled = false;
      if (err.status === 404) refreshBookings();
    }
  }

  function onBookingsClick(event) {
    const button = event.target.closest('button.cancel-booking');
    if (button && !button.disabled) cancelBooking(button.dataset.booking, button);
  }

  // ---------------------------------------------------------------- checkout: holding seats

  /** The cluster's clock as well as the page knows it. */
  function clusterNow() {
    return Date.now() + state.clockOffsetMs;
  }

  /** A clock reading from the cluster, taken between sentAt and receivedAt (browser ms). */
  function learnClock(clusterMs, sentAt, receivedAt) {
    const ms = Number(clusterMs);
    if (!Number.isFinite(ms) || ms <= 0) return;
    // The node read its clock somewhere in the round trip: the middle is the best guess.
    state.clockOffsetMs = ms - (sentAt + receivedAt) / 2;
    state.clockKnown = true;
  }

  /** "9:41 left", or "expired": the shell's words. */
  function timeLeftText(leftMs) {
    if (!(leftMs > 0)) return 'expired';
    const secs = Math.ceil(leftMs / 1000);
    return `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')} left`;
  }

  /** The hold request for selected seats, or for the best N of the form. */
  async function requestHold(body, focusBack) {
    if (state.busy || !state.token || !state.currentEvent) return;
    const name = state.currentEvent;
    setBusy(true);
    try {
      const sentAt = Date.now();
      const reply = await api('POST', `/api/events/${enc(name)}/hold`, Object.assign({ request_id: newRequestId() }, body));
      const hold = reply.hold || {};
      // Until GET /api/holds says the cluster's clock, the hold's birth is the best reading.
      if (!state.clockKnown) learnClock(hold.created_at_ms, sentAt, Date.now());
      const seats = Array.isArray(hold.seats) ? hold.seats.map(String) : [];
      patchSeats(hold.event || name, seats, 'held_by_you', { holdId: hold.id, expiresAtMs: hold.expires_at_ms });
      clearSelection();
      upsertHold(hold);
      const left = timeLeftText(Number(hold.expires_at_ms) - clusterNow());
      showInfo(`Holding ${seats.join(', ')} (hold ${hold.id}, ${left}): confirm it under Your holds to buy.`);
      afterChange();
    } catch (err) {
      showError(err);
      if (err.status === 409 || err.code === 'FAILED_PRECONDITION') loadSeats(state.seatGen, { quiet: true, retries: 0 });
    } finally {
      setBusy(false);
      restoreFocusAfterAction(focusBack);
    }
  }

  function holdSelected() {
    const seats = selectedWith('free');
    if (seats.length) requestHold({ seats }, $('hold-button'));
  }

  function onBestSubmit(event) {
    event.preventDefault();
    const count = Number($('best-count').value);
    const max = Number($('best-count').max) || SEATS_PER_REQUEST_MAX;
    if (!Number.isInteger(count) || count < 1 || count > max) {
      showError(`Ask for 1 to ${max} seats.`);
      $('best-count').focus();
      return;
    }
    const body = { best: count, split: $('best-split').checked };
    const category = $('best-category-field').hidden ? '' : $('best-category').value;
    if (category) body.category = category;
    requestHold(body, $('best-button'));
  }

  // ---------------------------------------------------------------- checkout: the holds panel

  function scheduleHoldsRefresh() {
    clearTimeout(state.holdsTimer);
    state.holdsTimer = setTimeout(refreshHolds, 250);
  }

  async function refreshHolds() {
    clearTimeout(state.holdsTimer);
    const token = state.token;
    if (!token) {
      renderHolds(null);
      return;
    }
    try {
      const sentAt = Date.now();
      const reply = await api('GET', '/api/holds', undefined, { quiet: true, retries: 1 });
      if (token !== state.token) return;
      learnClock(reply.now_ms, sentAt, Date.now());
      renderHolds(Array.isArray(reply.holds) ? reply.holds : []);
    } catch (err) {
      if (!err.handled && token === state.token) {
        $('holds-empty').hidden = false;
        $('holds-empty').textContent = 'Your holds could not be loaded right now.';
      }
    }
  }

  /** A hold just made or extended, shown at once; the next refresh confirms it. */
  function upsertHold(hold) {
    if (!hold || !hold.id) return;
    const list = (state.holds || []).filter((h) => h.id !== hold.id);
    list.push(hold);
    renderHolds(list);
  }

  function dropHold(id) {
    renderHolds((state.holds || []).filter((h) => h.id !== id));
  }

  /** list null means "logged out". Typed payment references survive a re-render. */
  function renderHolds(list) {
    const ul = $('holds');
    const hadFocus = ul.contains(document.activeElement);
    const focusedId = hadFocus && document.activeElement.id ? document.activeElement.id : null;
    const typed = new Map();
    for (const input of ul.querySelectorAll('input.payment-ref')) typed.set(input.dataset.hold, input.value);
    state.holds = list;
    ul.textContent = '';
    const empty = $('holds-empty');
    if (!list) {
      stopCountdown();
      empty.hidden = false;
      empty.textContent = 'Log in to hold seats.';
      return;
    }
    for (const hold of list) {
      if (hold && hold.id) ul.append(holdItem(hold, typed.get(String(hold.id)) || ''));
    }
    empty.hidden = ul.children.length > 0;
    empty.textContent = 'No holds. Select seats and press Hold selected, or hold the best seats.';
    tickCountdowns();
    if (ul.children.length) startCountdown();
    else stopCountdown();
    if (hadFocus) {
      const again = focusedId && $(focusedId);
      (again || ul.querySelector('button') || $('holds-heading')).focus();
    }
  }

  function holdItem(hold, typedRef) {
    const id = String(hold.id);
    const seats = Array.isArray(hold.seats) ? hold.seats.join(', ') : '';
    const price = Number(hold.total_minor) > 0 ? priceText(hold.total_minor, hold.currency) : '';
    const refId = `payment-ref-${id}`;
    const button = (kind, look, text, label) =>
      el('button', { type: 'button', class: `btn btn-small ${look} ${kind}`, 'data-hold': id, id: `${kind}-${id}`, 'aria-label': label }, text);
    const ref = el('input', {
      id: refId,
      class: 'payment-ref',
      type: 'text',
      'data-hold': id,
      maxlength: 64,
      autocomplete: 'off',
      placeholder: 'optional',
    });
    ref.value = typedRef;
    return el(
      'li',
      { 'data-hold': id, 'data-event': hold.event, 'data-expires-at-ms': Number(hold.expires_at_ms) || 0 },
      el(
        'p',
        { class: 'hold-text' },
        el('span', { class: 'hold-seats' }, `${id}: ${seats} (${hold.event})${price ? ` · ${price}` : ''}`),
        ' ',
        // role=timer: a live countdown that screen readers do not read out every second.
        el('span', { class: 'countdown', role: 'timer', 'aria-label': `Time left to confirm ${id}` }, '')
      ),
      el(
        'div',
        { class: 'hold-ref field' },
        el('label', { for: refId }, 'Payment reference'),
        ref
      ),
      el(
        'div',
        { class: 'hold-actions' },
        button('confirm-hold', 'btn-primary', 'Confirm', `Confirm hold ${id} and buy ${seats}`),
        button('extend-hold', '', 'More time', `Extend hold ${id}`),
        button('release-hold', '', 'Release', `Release hold ${id}: ${seats} free again`)
      )
    );
  }

  function startCountdown() {
    if (!state.countdownTimer) state.countdownTimer = setInterval(tickCountdowns, COUNTDOWN_TICK_MS);
  }

  function stopCountdown() {
    clearInterval(state.countdownTimer);
    state.countdownTimer = 0;
  }

  /** Every hold's time left against the cluster's clock; an expired one can only be dismissed. */
  function tickCountdowns() {
    const now = clusterNow();
    for (const li of $('holds').children) {
      const id = li.dataset.hold;
      const left = Number(li.dataset.expiresAtMs) - now;
      const box = li.querySelector('.countdown');
      const text = timeLeftText(left);
      if (box && box.textContent !== text) box.textContent = text;
      const expired = !(left > 0);
      li.dataset.expired = expired ? 'true' : 'false';
      li.dataset.warn = !expired && left <= HOLD_WARN_MS ? 'true' : 'false';
      // Only ever disabled here: a button busy with its request is re-enabled by that request.
      if (expired) for (const b of li.querySelectorAll('.confirm-hold, .extend-hold')) b.disabled = true;
      if (!expired && left <= HOLD_WARN_MS && !state.holdWarned.has(id)) {
        state.holdWarned.add(id);
        showInfo(`Hold ${id} runs out in under a minute: confirm it, or ask for more time.`);
      }
      if (expired && !state.holdRechecked.has(id)) {
        // The cluster frees the seats about now; the stream shows them free, and a fresh
        // list drops the hold.
        state.holdRechecked.add(id);
        setTimeout(refreshHolds, EXPIRED_RECHECK_MS);
      }
    }
  }

  async function confirmHold(id, button) {
    const input = $(`payment-ref-${id}`);
    const body = { request_id: newRequestId() };
    if (input && input.value.trim()) body.payment_ref = input.value.trim();
    button.disabled = true;
    try {
      const reply = await api('POST', `/api/holds/${enc(id)}/confirm`, body);
      const booking = reply.booking || {};
      const seats = Array.isArray(booking.seats) ? booking.seats.map(String) : [];
      patchSeats(booking.event, seats, 'mine', { bookingId: booking.id });
      dropHold(id);
      const price = Number(booking.total_minor) > 0 ? ` for ${priceText(booking.total_minor, booking.currency)}` : '';
      const are = seats.length === 1 ? 'is' : 'are';
      showInfo(`Confirmed: ${seats.join(', ')} ${are} yours${price} (booking ${booking.id}). Your tickets are under My tickets.`);
      afterChange();
    } catch (err) {
      showError(err);
      button.disabled = false;
      // Expired, released or unknown by now: the list says what is left.
      if (err.status === 404 || err.status === 409) refreshHolds();
    }
  }

  async function extendHold(id, button) {
    button.disabled = true;
    try {
      const reply = await api('POST', `/api/holds/${enc(id)}/extend`, { request_id: newRequestId() });
      const hold = reply.hold || {};
      state.holdWarned.delete(id);
      upsertHold(hold);
      showInfo(`Hold ${id}: ${timeLeftText(Number(hold.expires_at_ms) - clusterNow())}.`);
      refreshHolds();
    } catch (err) {
      showError(err);
      button.disabled = false;
      if (err.status === 404 || err.status === 409) refreshHolds();
    }
  }

  async function releaseHold(id, button) {
    button.disabled = true;
    try {
      const reply = await api('POST', `/api/holds/${enc(id)}/release`, { request_id: newRequestId() });
      const freed = Array.isArray(reply.seats) ? reply.seats.map(String) : [];
      if (reply.event) patchSeats(reply.event, freed, 'free');
      dropHold(id);
      showInfo(`Released hold ${id}${freed.length ? `: ${freed.join(', ')} free again` : ''}.`);
      afterChange();
    } catch (err) {
      showError(err);
      button.disabled = false;
      if (err.status === 404 || err.status === 409) refreshHolds();
    }
  }

  function onHoldsClick(event) {
    const button = event.target.closest('button[data-hold]');
    if (!button || button.disabled) return;
    const id = button.dataset.hold;
    if (button.classList.contains('confirm-hold')) confirmHold(id, button);
    else if (button.classList.contains('extend-hold')) extendHold(id, button);
    else if (button.classList.contains('release-hold')) releaseHold(id, button);
  }

  // ---------------------------------------------------------------- checkout: tickets

  async function refreshTickets() {
    const token = state.token;
    if (!token) {
      renderTickets(null);
      return;
    }
    try {
      const reply = await api('GET', '/api/tickets', undefined, { quiet: true, retries: 1 });
      if (token !== state.token) return;
      renderTickets(Array.isArray(reply.tickets) ? reply.tickets : []);
    } catch (err) {
      if (!err.handled && token === state.token) {
        $('tickets-empty').hidden = false;
        $('tickets-empty').textContent = 'Your tickets could not be loaded right now.';
      }
    }
  }

  /**
   * The server's SVG text as an element, parsed as SVG (never as HTML), or null. The page
   * draws no QR code itself: the server does, with the code it signed.
   */
  function qrElement(svgText, label) {
    if (typeof svgText !== 'string' || !svgText.startsWith('<svg')) return null;
    const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
    const svg = doc.documentElement;
    if (!svg || svg.nodeName !== 'svg' || doc.getElementsByTagName('parsererror').length) return null;
    for (const script of svg.querySelectorAll('script, foreignObject')) script.remove();
    const node = document.importNode(svg, true);
    // The CSS sizes it; the viewBox keeps it square.
    node.removeAttribute('width');
    node.removeAttribute('height');
    node.setAttribute('class', 'qr');
    node.setAttribute('role', 'img');
    node.setAttribute('aria-label', label);
    node.setAttribute('focusable', 'false');
    return node;
  }

  /** list null means "logged out". */
  function renderTickets(list) {
    const ul = $('tickets');
    ul.textContent = '';
    const empty = $('tickets-empty');
    if (!list) {
      empty.hidden = false;
      empty.textContent = 'Log in to see your tickets.';
      return;
    }
    for (const t of list) {
      if (!t || typeof t.code !== 'string') continue;
      const used = Number(t.checked_in_at_ms) > 0;
      const status = used
        ? `checked in ${new Date(Number(t.checked_in_at_ms)).toLocaleString()}${t.checked_in_by ? ` by ${t.checked_in_by}` : ''}`
        : 'not used yet';
      const qr = qrElement(t.qr_svg, `QR code of the ticket for seat ${t.seat} of ${t.event}`);
      ul.append(
        el(
          'li',
          { 'data-seat': t.seat, 'data-event': t.event, 'data-booking': t.booking_id, 'data-used': used ? 'true' : 'false' },
          qr || el('p', { class: 'muted small' }, 'No QR code: show the code below.'),
          el(
            'div',
            { class: 'ticket-text' },
            el('p', { class: 'ticket-seat' }, `Seat ${t.seat} · ${t.event}`),
            el('p', { class: 'muted small' }, `booking ${t.booking_id} · ${status}`),
            el('p', { class: 'ticket-code small' }, t.code)
          )
        )
      );
    }
    empty.hidden = ul.children.length > 0;
    empty.textContent = 'No tickets yet: confirm a hold, or reserve seats, to get them.';
  }

  function scheduleTicketsRefresh() {
    clearTimeout(state.ticketsTimer);
    state.ticketsTimer = setTimeout(refreshTickets, 250);
  }

  // ---------------------------------------------------------------- ask

  function toolName(tool) {
    if (typeof tool === 'string') return tool;
    if (tool && typeof tool === 'object') return String(tool.name || tool.tool || JSON.stringify(tool));
    return String(tool);
  }

  function setAskAnswer(text, meta) {
    $('ask-text').textContent = text;
    $('ask-meta').textContent = meta;
  }

  function hideProposal() {
    state.proposal = null;
    $('ask-proposal').hidden = true;
    $('ask-question').textContent = '';
  }

  function resetAsk() {
    hideProposal();
    setAskAnswer('', '');
  }

  function describeAction(action) {
    if (!action || typeof action !== 'object') return 'Carry this out?';
    const seats = Array.isArray(action.seats) ? action.seats.join(', ') : '';
    if (action.kind === 'reserve') return `Reserve ${seats}?`;
    if (action.kind === 'cancel_seats') return `Cancel ${seats}?`;
    if (action.kind === 'cancel_booking') return `Cancel booking ${action.booking_id || action.booking || ''}?`;
    return 'Carry this out?';
  }

  async function onAskSubmit(event) {
    event.preventDefault();
    const q = $('ask-input').value.trim();
    if (!q) {
      $('ask-input').focus();
      return;
    }
    const button = $('ask-button');
    button.disabled = true;
    hideProposal();
    setAskAnswer('Thinking…', '');
    try {
      const reply = await api(
        'POST',
        '/api/ask',
        { q, event: state.currentEvent || DEFAULT_EVENT },
        { timeoutMs: ASK_TIMEOUT_MS }
      );
      const tools = Array.isArray(reply.tools) ? reply.tools.map(toolName) : [];
      const meta = `backend: ${reply.backend || 'unknown'} · tools: ${tools.length ? tools.join(', ') : 'none'}`;
      setAskAnswer(typeof reply.answer === 'string' && reply.answer ? reply.answer : '(no answer)', meta);
      if (reply.proposal && typeof reply.proposal === 'object') {
        state.proposal = reply.proposal; // sent back exactly as received
        $('ask-question').textContent =
          typeof reply.proposal.question === 'string' && reply.proposal.question
            ? reply.proposal.question
            : describeAction(reply.proposal.action);
        $('ask-proposal').hidden = false;
        $('confirm-button').disabled = false;
        $('decline-button').disabled = false;
      }
    } catch (err) {
      setAskAnswer('', '');
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  async function onConfirm() {
    const proposal = state.proposal;
    if (!proposal) return;
    $('confirm-button').disabled = true;
    $('decline-button').disabled = true;
    try {
      // The proposal carries its own request_id, so a retry carries it out once.
      const reply = await api('POST', '/api/ask/confirm', { proposal }, { timeoutMs: ASK_TIMEOUT_MS });
      const done = typeof reply.carried_out === 'string' && reply.carried_out ? reply.carried_out : 'Done.';
      hideProposal();
      setAskAnswer(done, '');
      showInfo(done);
      $('ask-input').focus();
      afterChange();
    } catch (err) {
      showError(err);
      $('confirm-button').disabled = false;
      $('decline-button').disabled = false;
    }
  }

  function onDecline() {
    hideProposal();
    setAskAnswer('Declined: nothing was changed.', '');
    $('ask-input').focus();
  }

  // ---------------------------------------------------------------- cluster

  function nodeHealth(node) {
    if (node.reachable === false || node.role === 'unreachable' || node.role === 'shutdown') return 'unreachable';
    if (typeof node.lag === 'number' && node.lag > LAG_WARN) return 'lagging';
    return 'healthy';
  }

  const HEALTH_SHAPE = { healthy: '●', lagging: '▲', unreachable: '✕' };

  function renderCluster(cluster) {
    if (!cluster || typeof cluster !== 'object') return;
    const table = $('cluster-table');
    table.dataset.stale = 'false';
    const nodes = Array.isArray(cluster.nodes) ? cluster.nodes : [];
    const leader = cluster.leader === undefined || cluster.leader === null || cluster.leader === 0 ? null : cluster.leader;
    const term = cluster.term === undefined || cluster.term === null ? '?' : cluster.term;

    let caption;
    if (typeof cluster.error === 'string' && !nodes.length) caption = `Cluster status unavailable: ${cluster.error}`;
    else if (leader === null) caption = `No leader right now · term ${term}`;
    else {
      const lead = nodes.find((n) => String(n.id) === String(leader));
      caption = `Leader: node ${leader}${lead && lead.addr ? ` (${lead.addr})` : ''} · term ${term}`;
    }
    $('cluster-caption').textContent = caption;

    const body = $('cluster-body');
    body.textContent = '';
    const sorted = nodes.slice().sort((a, b) => Number(a.id) - Number(b.id));
    for (const node of sorted) {
      const health = nodeHealth(node);
      const isLeader = node.role === 'leader' || node.leader === true || (leader !== null && String(node.id) === String(leader));
      const role = node.role || (isLeader ? 'leader' : 'unknown');
      body.append(
        el(
          'tr',
          { 'data-node': node.id, 'data-role': role, 'data-health': health },
          // data-label names a cell when the table is shown as one block per node (phones).
          el('th', { scope: 'row' }, String(node.id)),
          el('td', {}, node.addr ? String(node.addr) : '—'),
          el('td', {}, role),
          el('td', { class: 'num', 'data-label': 'term' }, node.term === undefined || node.term === null ? '—' : String(node.term)),
          el(
            'td',
            { class: 'num', 'data-label': 'applied' },
            node.applied_index === undefined || node.applied_index === null ? '—' : String(node.applied_index)
          ),
          el('td', { class: 'num', 'data-label': 'lag' }, typeof node.lag === 'number' ? String(node.lag) : '—'),
          el(
            'td',
            {},
            el('span', { class: 'health-shape', 'aria-hidden': 'true' }, HEALTH_SHAPE[health]),
            el('span', { class: 'health-text' }, health)
          )
        )
      );
    }
  }

  function setClusterNotice(text) {
    const box = $('cluster-notice');
    if (box.textContent !== text) box.textContent = text;
  }

  async function pollClusterOnce() {
    if (state.clusterPollInFlight) return;
    state.clusterPollInFlight = true;
    try {
      const cluster = await api('GET', '/api/cluster', undefined, { quiet: true, retries: 0, timeoutMs: 3000 });
      renderCluster(cluster);
    } catch (err) {
      if (err.status === 401 && !state.token) {
        $('cluster-caption').textContent = 'Log in to see the cluster.';
        stopClusterPolling();
      } else if (!err.handled) {
        $('cluster-table').dataset.stale = 'true';
        $('cluster-caption').textContent = 'Cluster status unavailable right now (last known status shown).';
      }
    } finally {
      state.clusterPollInFlight = false;
    }
  }

  function startClusterPolling() {
    if (!state.clusterPoll) state.clusterPoll = setInterval(pollClusterOnce, CLUSTER_POLL_MS);
  }

  function stopClusterPolling() {
    clearInterval(state.clusterPoll);
    state.clusterPoll = 0;
  }

  function restartClusterWatch() {
    if (state.clusterWatch) state.clusterWatch.abort();
    stopClusterPolling();
    setClusterNotice('');
    const sentToken = state.token;
    state.clusterWatch = openStream({
      url: () => '/api/cluster/watch',
      eventName: 'cluster',
      onMessage: (cluster) => {
        stopClusterPolling();
        setClusterNotice('');
        renderCluster(cluster);
      },
      onLive: () => {
        stopClusterPolling();
        setClusterNotice('');
      },
      onDown: () => {
        setClusterNotice(`${TEXT_RECONNECTING} (checking every 2 s meanwhile)`);
        startClusterPolling();
      },
      onStop: (result) => {
        if (result.status === 401 && sentToken && sentToken === state.token) {
          expireSession();
          return;
        }
        // No stream for us: polling alone keeps the table fresh.
        startClusterPolling();
      },
    });
    pollClusterOnce(); // the table fills at once, whatever the stream does
  }

  // ---------------------------------------------------------------- wiring

  function bindEvents() {
    $('login-form').addEventListener('submit', onLoginSubmit);
    $('logout-button').addEventListener('click', onLogout);
    $('event-picker').addEventListener('change', (event) => {
      const name = event.target.value;
      if (name) switchEvent(name);
    });
    const map = $('seat-map');
    map.addEventListener('click', onSeatClick);
    map.addEventListener('keydown', onSeatKeydown);
    map.addEventListener('focusin', onSeatFocusIn);
    $('reserve-button').addEventListener('click', reserveSelected);
    $('hold-button').addEventListener('click', holdSelected);
    $('best-form').addEventListener('submit', onBestSubmit);
    $('holds').addEventListener('click', onHoldsClick);
    $('signup-form').addEventListener('submit', onSignupSubmit);
    $('cancel-button').addEventListener('click', cancelSelected);
    $('bookings').addEventListener('click', onBookingsClick);
    $('ask-form').addEventListener('submit', onAskSubmit);
    $('confirm-button').addEventListener('click', onConfirm);
    $('decline-button').addEventListener('click', onDecline);
    window.addEventListener('hashchange', () => {
      const name = eventFromHash();
      if (name && name !== state.currentEvent) switchEvent(name);
    });
  }

  async function init() {
    bindEvents();
    restoreSession();
    applyAuthUi();
    renderBookings(null);
    renderHolds(null);
    renderTickets(null);
    restartClusterWatch();
    await loadEvents();
    await switchEvent(pickInitialEvent());
    refreshBookings();
    refreshHolds();
    refreshTickets();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init, { once: true });
  else init();
})();
