// The channel inspector (/inspector): join a channel with a chosen token and config, see every
// message with its time, event and payload, send broadcasts, track presence, subscribe to
// Postgres Changes. It uses @supabase/realtime-js unchanged (bundled by esbuild at build time).
import { RealtimeClient } from '@supabase/realtime-js';

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/realtime/v1`;
let client = null;
let channel = null;

function log(kind, event, payload, error = false) {
  const li = document.createElement('li');
  li.dataset.kind = kind;
  const head = document.createElement('div');
  head.className = error ? 'error' : 'meta';
  head.textContent = `${new Date().toISOString().slice(11, 23)} ${kind} ${event}`;
  li.append(head);
  if (payload !== undefined) {
    const pre = document.createElement('pre');
    pre.textContent = typeof payload === 'string' ? payload : JSON.stringify(payload, null, 2);
    li.append(pre);
  }
  $('log').prepend(li);
}

function setState(text, joined) {
  $('state').textContent = text;
  $('send-button').disabled = !joined;
  $('leave-button').disabled = !channel; // Join stays enabled: joining again leaves first
}

async function leave() {
  if (client) {
    await client.removeAllChannels();
    client.disconnect();
  }
  client = null;
  channel = null;
  setState('not connected', false);
}

$('join').addEventListener('submit', async (e) => {
  e.preventDefault();
  await leave();
  const token = $('token').value.trim();
  const name = $('channel').value.trim();
  client = new RealtimeClient(wsUrl, { params: { apikey: token } });
  const config = { private: $('private').checked, broadcast: { self: true, ack: true } };
  if ($('presence').checked) config.presence = { key: $('presence-key').value || 'inspector' };
  channel = client.channel(name, { config });
  channel.on('broadcast', { event: '*' }, (m) => log('broadcast', m.event, m.payload));
  channel.on('presence', { event: 'sync' }, () => log('presence', 'sync', channel.presenceState()));
  channel.on('system', {}, (m) => log('system', m.status ?? '', m, m.status === 'error'));
  const table = $('pg-table').value.trim();
  if (table) {
    const [schema, tbl] = table.includes('.') ? table.split('.', 2) : ['public', table];
    const filter = $('pg-filter').value.trim();
    channel.on('postgres_changes', { event: '*', schema, table: tbl, ...(filter ? { filter } : {}) }, (m) =>
      log('postgres_changes', m.eventType, m)
    );
  }
  setState(`joining ${name}…`, false);
  channel.subscribe(async (status, err) => {
    if (status === 'SUBSCRIBED') {
      setState(`joined ${name}`, true);
      log('status', status);
      if ($('presence').checked) await channel.track({ online_at: new Date().toISOString() });
    } else {
      // the join's error exactly as the server sent it
      log('status', status, err ? err.message : undefined, status !== 'CLOSED');
      if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') {
        setState(`${status}: ${err ? err.message : ''}`, false);
        await leave();
        $('state').textContent = `${status}: ${err ? err.message : ''}`;
      }
    }
  });
  setState(`joining ${name}…`, false);
});

$('leave-button').addEventListener('click', () => leave());

$('send').addEventListener('submit', async (e) => {
  e.preventDefault();
  let payload;
  try {
    payload = JSON.parse($('payload').value);
  } catch (err) {
    log('error', 'payload is not JSON', String(err), true);
    return;
  }
  const event = $('event').value.trim();
  const result = await channel.send({ type: 'broadcast', event, payload });
  log('sent', `${event}: ${result}`, undefined, result !== 'ok');
});
