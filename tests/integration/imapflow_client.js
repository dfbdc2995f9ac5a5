// A bounded imapflow session against mailcore's IMAP (test_imap_imapflow.py):
// login, LIST, APPEND (imapflow uses {n+} literals), FETCH BODY.PEEK[] with
// UID, SEARCH, flags, a move (COPY + STORE + EXPUNGE without MOVE), and a
// short loop of appends and fetches. Prints one JSON line with the results.
const { ImapFlow } = require('imapflow');

async function main() {
	const [port, user, pass, rounds] = process.argv.slice(2);
	const client = new ImapFlow({
		host: '127.0.0.1', port: Number(port), secure: false, doSTARTTLS: false,
		auth: { user, pass }, logger: false,
	});
	const out = {};
	await client.connect();
	out.capabilities = [...client.capabilities.keys()];
	out.list = (await client.list()).map((m) => m.path);
	await client.mailboxCreate('Archive');
	for (let i = 0; i < Number(rounds); i++) {
		const r = await client.append('INBOX', `Subject: flow ${i}\r\nFrom: a@example.com\r\n\r\nbody ${i}\r\n`, ['\\Seen']);
		if (!r.uid) throw new Error('no APPENDUID');
	}
	const lock = await client.getMailboxLock('INBOX');
	try {
		out.exists = client.mailbox.exists;
		let n = 0;
		for await (const msg of client.fetch('1:*', { uid: true, flags: true, source: true, envelope: true })) {
			if (!msg.source.toString().includes(`body ${n}`)) throw new Error('bad body ' + n);
			n++;
		}
		out.fetched = n;
		out.search = await client.search({ subject: 'flow 7' });
		await client.messageFlagsAdd('1', ['\\Flagged']);
		// a keyword (RFC 5550 $Forwarded): kept, listed, searchable
		await client.messageFlagsAdd('2', ['$Forwarded']);
		out.permanentFlags = [...(client.mailbox.permanentFlags || [])];
		out.keywordSearch = await client.search({ keyword: '$Forwarded' });
		for await (const msg of client.fetch('2', { flags: true })) out.flags2 = [...msg.flags];
		const moved = await client.messageMove('1', 'Archive');
		out.moved = moved && moved.uidMap ? (moved.uidMap.size ?? Object.keys(moved.uidMap).length) : 0;
	} finally {
		lock.release();
	}
	out.archive = (await client.status('Archive', { messages: true })).messages;
	await client.logout();
	console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
