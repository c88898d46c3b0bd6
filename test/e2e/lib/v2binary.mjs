// v2binary.mjs: the vsn 2.0.0 binary frames of PROTOCOL.md 2.3 that the suite
// builds or checks by hand (kind 3 client->server, kind 4 server->client).

export const KIND_USER_BROADCAST_PUSH = 3;
export const KIND_USER_BROADCAST = 4;
export const ENC_BINARY = 0;
export const ENC_JSON = 1;

const utf8 = (s) => Buffer.from(s ?? '', 'utf8');

// Kind 3: kind, join_ref_len, ref_len, topic_len, event_len, meta_len, encoding,
// then join_ref, ref, topic, user_event, metadata, payload.
export function encodeUserBroadcastPush({
	joinRef = '',
	ref = '',
	topic,
	event,
	metadata = '',
	encoding = ENC_JSON,
	payload,
}) {
	const parts = [joinRef, ref, topic, event, metadata].map(utf8);
	const body =
		encoding === ENC_JSON && !Buffer.isBuffer(payload)
			? utf8(JSON.stringify(payload))
			: Buffer.from(payload);
	const head = Buffer.from([
		KIND_USER_BROADCAST_PUSH,
		...parts.map((p) => p.length),
		encoding,
	]);
	return Buffer.concat([head, ...parts, body]);
}

// Kind 4: kind, topic_len, event_len, meta_len, encoding, topic, event, metadata, payload.
// Returns null when the buffer is not a well-formed kind 4 frame.
export function decodeUserBroadcast(buf) {
	buf = Buffer.from(buf);
	if (buf.length < 5 || buf[0] !== KIND_USER_BROADCAST) {
		return null;
	}
	const [topicLen, eventLen, metaLen, encoding] = [buf[1], buf[2], buf[3], buf[4]];
	let off = 5;
	const take = (n) => {
		const s = buf.subarray(off, off + n);
		off += n;
		return s;
	};
	if (off + topicLen + eventLen + metaLen > buf.length) {
		return null;
	}
	const topic = take(topicLen).toString('utf8');
	const event = take(eventLen).toString('utf8');
	const metadata = take(metaLen).toString('utf8');
	const payload = buf.subarray(off);
	return { kind: KIND_USER_BROADCAST, topic, event, metadata, encoding, payload };
}
