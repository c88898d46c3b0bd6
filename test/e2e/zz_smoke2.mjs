import { RealtimeClient } from '@supabase/realtime-js';
import WebSocket from 'ws';
import { execFileSync } from 'node:child_process';
const tok = execFileSync('/work/main/build/realtime-fanout', ['token', '--jwt-secret', 'sekrit-sekrit-sekrit-sekrit-sekrit', '--role', 'anon']).toString().trim();
const c = new RealtimeClient('ws://127.0.0.1:54999/realtime/v1', { transport: WebSocket, params: { apikey: tok } });
const n = Number(process.argv[2]);
const filter = n < 0 ? undefined : `id=in.(${Array.from({ length: n }, (_, k) => k).join(',')})`;
const t0 = Date.now();
c.channel('x').on('postgres_changes', { event: '*', schema: 'public', table: 'f', filter }, () => {})
  .on('system', {}, (p) => console.log('system', Date.now() - t0, JSON.stringify(p).slice(-150)))
  .subscribe((s) => console.log(s));
setTimeout(() => process.exit(0), 1500);
