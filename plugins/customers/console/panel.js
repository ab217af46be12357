// The customers plugin's console panel (docs/PLUGINS.md, "Console
// panels"): list and search customers (name or e-mail, phone, tag),
// create and edit them, a detail view with the timeline every channel
// contributes to, the customer's SMS (sms.read) and calls (voice.read)
// when the telephony plugin serves them, and for holders of
// privacy.manage "Export data" and "Erase" with a typed confirmation.  Plain DOM; every value from the
// API is set as text, never as HTML.

const C = '/api/v1/customers';

export default function mount(root, ctx) {
  let gone = false;	// the user navigated away: late answers are dropped
  let listCursor = null;
  let listQuery = {};
  let current = null;	// the customer shown in detail
  let timelineCursor = null;
  let exportUrl = null;

  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    const { dataset, attrs, ...rest } = props;
    Object.assign(node, rest);
    if (dataset) Object.assign(node.dataset, dataset);
    if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    node.append(...children);
    return node;
  };
  let ids = 0;
  // A labelled control: [label, control] ids unique in the page.
  const labelled = (text, control) => {
    control.id = `customers-f${++ids}`;
    return el('div', { className: 'field' }, el('label', { htmlFor: control.id, textContent: text }), control);
  };
  const canManage = ctx.can('customers.manage');
  const canPrivacy = ctx.can('privacy.manage');
  const canSms = ctx.can('sms.read');
  const canVoice = ctx.can('voice.read');
  // Which telephony routes this server serves (the OpenAPI document lists
  // them), so a server without them shows a sentence, not a failed request.
  let served = null;
  const servedPaths = () => {
    if (!served) {
      served = ctx.api.get('/api/v1/openapi.json').then((d) => Object.keys(d?.paths || {}))
        .catch(() => { served = null; return []; });
    }
    return served;
  };

  const problem = el('p', { hidden: true, attrs: { role: 'alert' } });
  const fail = (err) => {
    if (gone) return;
    const fields = (err.errors || []).filter((e) => e.field).map((e) => `${e.field}: ${e.message}`).join('; ');
    problem.textContent = fields ? `${err.message} (${fields})` : err.message;
    problem.hidden = false;
  };
  const clear = () => { problem.hidden = true; problem.textContent = ''; };

  // --- List and search -------------------------------------------------
  const q = el('input', { type: 'search', name: 'q', maxLength: 200 });
  const phone = el('input', { type: 'tel', name: 'phone', maxLength: 64, autocomplete: 'off' });
  const tag = el('input', { type: 'text', name: 'tag', maxLength: 64 });
  const searchForm = el('form', { attrs: { role: 'search', 'aria-label': 'Search customers' } },
    labelled('Search by name or e-mail', q), labelled('Search by phone', phone), labelled('Search by tag', tag),
    el('button', { type: 'submit', textContent: 'Search' }));
  const rows = el('tbody');
  const table = el('table', { dataset: { testid: 'customers-list' } },
    el('caption', { textContent: 'Customers, newest first' }),
    el('thead', {}, el('tr', {}, ...['Name', 'Phone', 'E-mail', 'Tags', ''].map((t) =>
      el('th', { scope: 'col', textContent: t })))),
    rows);
  const empty = el('p', { hidden: true, textContent: 'No customers match.' });
  const more = el('button', { type: 'button', hidden: true, textContent: 'Load more' });
  const newButton = el('button', { type: 'button', textContent: 'New customer', hidden: !canManage });
  const listView = el('section', { attrs: { 'aria-label': 'Customer list' } }, searchForm, newButton, table, empty,
    more);

  const customerRow = (c) => {
    const open = el('button', { type: 'button', textContent: 'Open',
      attrs: { 'aria-label': `Open ${c.name || `customer ${c.id}`}` } });
    open.addEventListener('click', () => showDetail(c.id));
    return el('tr', { dataset: { id: String(c.id) } },
      el('td', { textContent: c.name || '(no name)' }),
      el('td', { textContent: c.phone ?? '' }),
      el('td', { textContent: c.email ?? '' }),
      el('td', { textContent: (c.tags || []).join(', ') }),
      el('td', {}, open));
  };

  async function loadList(append) {
    clear();
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(listQuery)) if (v) params.set(k, v);
    if (append && listCursor) params.set('cursor', listCursor);
    try {
      const r = await ctx.api.get(`${C}?${params}`);
      if (gone) return;
      if (!append) rows.replaceChildren();
      rows.append(...r.data.map(customerRow));
      listCursor = r.next_cursor;
      more.hidden = !listCursor;
      empty.hidden = rows.children.length > 0;
    } catch (err) { fail(err); }
  }

  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    listQuery = { q: q.value.trim(), phone: phone.value.trim(), tag: tag.value.trim() };
    loadList(false);
  });
  more.addEventListener('click', () => loadList(true));

  // --- Create and edit ---------------------------------------------------
  const fName = el('input', { type: 'text', maxLength: 200 });
  const fPhone = el('input', { type: 'tel', maxLength: 64, autocomplete: 'off' });
  const fEmail = el('input', { type: 'email', maxLength: 254 });
  const fWa = el('input', { type: 'text', maxLength: 20, inputMode: 'numeric' });
  const fTags = el('input', { type: 'text' });
  const fNotes = el('textarea', { rows: 3, maxLength: 10000 });
  const fAttrs = el('textarea', { rows: 4 });
  const formTitle = el('h3');
  const save = el('button', { type: 'submit', textContent: 'Save customer' });
  const cancel = el('button', { type: 'button', textContent: 'Cancel' });
  const form = el('form', { hidden: true, attrs: { 'aria-label': 'Customer' } }, formTitle,
    labelled('Name', fName), labelled('Phone', fPhone), labelled('E-mail', fEmail),
    labelled('WhatsApp id', fWa), labelled('Tags (comma-separated)', fTags), labelled('Notes', fNotes),
    labelled('Attributes (a JSON object)', fAttrs), save, cancel);
  let editing = null;	// the customer being edited, null for a new one

  const showForm = (c) => {
    clear();
    editing = c;
    formTitle.textContent = c ? `Edit ${c.name || `customer ${c.id}`}` : 'New customer';
    fName.value = c?.name ?? '';
    fPhone.value = c?.phone ?? '';
    fEmail.value = c?.email ?? '';
    fWa.value = c?.wa_id ?? '';
    fTags.value = (c?.tags ?? []).join(', ');
    fNotes.value = c?.notes ?? '';
    fAttrs.value = c && Object.keys(c.attributes || {}).length ? JSON.stringify(c.attributes, null, 2) : '';
    listView.hidden = true;
    detail.hidden = true;
    form.hidden = false;
    fName.focus();
  };
  newButton.addEventListener('click', () => showForm(null));
  cancel.addEventListener('click', () => {
    form.hidden = true;
    if (editing) showDetail(editing.id); else listView.hidden = false;
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear();
    let attributes = {};
    if (fAttrs.value.trim()) {
      try { attributes = JSON.parse(fAttrs.value); } catch {
        fail({ message: 'Attributes must be JSON', errors: [{ field: 'attributes', message: 'not valid JSON' }] });
        return;
      }
    }
    const body = {
      name: fName.value.trim(),
      phone: fPhone.value.trim() || null,
      email: fEmail.value.trim() || null,
      wa_id: fWa.value.trim() || null,
      tags: fTags.value.split(',').map((t) => t.trim()).filter(Boolean),
      notes: fNotes.value,
      attributes,
    };
    save.disabled = true;
    try {
      const c = editing ? await ctx.api.put(`${C}/${editing.id}`, body) : await ctx.api.post(C, body);
      if (gone) return;
      ctx.toast(editing ? 'Customer saved' : 'Customer created');
      form.hidden = true;
      showDetail(c.id);
    } catch (err) {
      fail(err);
    } finally {
      if (!gone) save.disabled = false;
    }
  });

  // --- Detail and timeline -----------------------------------------------
  const dTitle = el('h3', { tabIndex: -1 });
  const dFields = el('dl', { dataset: { testid: 'customer-detail' } });
  const back = el('button', { type: 'button', textContent: 'Back to the list' });
  const edit = el('button', { type: 'button', textContent: 'Edit', hidden: !canManage });
  const exportButton = el('button', { type: 'button', textContent: 'Export data', hidden: !canPrivacy });
  const eraseButton = el('button', { type: 'button', textContent: 'Erase', hidden: !canPrivacy });
  const exportOut = el('pre', { hidden: true, tabIndex: 0, dataset: { testid: 'customer-export' },
    attrs: { 'aria-label': 'Exported data' } });
  const exportLink = el('a', { hidden: true, textContent: 'Download the export (JSON)' });
  const timeline = el('ol', { dataset: { testid: 'customer-timeline' }, attrs: { 'aria-label': 'Timeline' } });
  const timelineEmpty = el('p', { hidden: true, textContent: 'Nothing on the timeline yet.' });
  const older = el('button', { type: 'button', hidden: true, textContent: 'Older' });
  const smsList = el('ol', { dataset: { testid: 'customer-sms' }, attrs: { 'aria-label': 'SMS' } });
  const smsNote = el('p', { hidden: true });
  const callList = el('ol', { dataset: { testid: 'customer-calls' }, attrs: { 'aria-label': 'Calls' } });
  const callNote = el('p', { hidden: true });
  const smsSection = el('section', { hidden: !canSms, attrs: { 'aria-label': 'SMS with this customer' } },
    el('h4', { textContent: 'SMS' }), smsList, smsNote);
  const callSection = el('section', { hidden: !canVoice, attrs: { 'aria-label': 'Calls with this customer' } },
    el('h4', { textContent: 'Calls' }), callList, callNote);
  const detail = el('section', { hidden: true, attrs: { 'aria-label': 'Customer' } }, dTitle,
    el('div', {}, back, edit, exportButton, eraseButton), dFields, exportLink, exportOut,
    el('h4', { textContent: 'Timeline' }), timeline, timelineEmpty, older, smsSection, callSection);

  // The erase dialog: the action only unlocks once the id or name is typed.
  const confirmInput = el('input', { type: 'text', autocomplete: 'off' });
  const confirmHelp = el('p');
  const confirmErase = el('button', { type: 'submit', textContent: 'Erase permanently', disabled: true });
  const confirmCancel = el('button', { type: 'button', textContent: 'Cancel' });
  const dialogForm = el('form', { method: 'dialog' }, el('h3', { textContent: 'Erase customer' }), confirmHelp,
    labelled('Confirmation', confirmInput), confirmErase, confirmCancel);
  const dialog = el('dialog', { attrs: { 'aria-label': 'Erase customer' } }, dialogForm);
  const confirmed = () => current !== null && (confirmInput.value.trim() === String(current.id) ||
    (current.name !== '' && confirmInput.value.trim() === current.name));
  confirmInput.addEventListener('input', () => { confirmErase.disabled = !confirmed(); });
  confirmCancel.addEventListener('click', () => dialog.close());

  const dd = (label, value) => [el('dt', { textContent: label }), el('dd', { textContent: value })];

  const timelineItem = (i) => el('li', { dataset: { channel: i.channel } },
    el('time', { dateTime: i.at, textContent: new Date(i.at).toLocaleString() }),
    document.createTextNode(` ${i.channel} ${i.kind} (${i.direction}, ${i.status}): `),
    el('span', { textContent: i.summary }));

  async function loadTimeline(append) {
    if (!current) return;
    const params = new URLSearchParams();
    if (append && timelineCursor) params.set('cursor', timelineCursor);
    try {
      const r = await ctx.api.get(`${C}/${current.id}/timeline?${params}`);
      if (gone) return;
      if (!append) timeline.replaceChildren();
      timeline.append(...r.data.map(timelineItem));
      timelineCursor = r.next_cursor;
      older.hidden = !timelineCursor;
      timelineEmpty.hidden = timeline.children.length > 0;
    } catch (err) { fail(err); }
  }

  // The customer's SMS: outbox and inbox by customer_id, newest first.
  const when = (iso) => el('time', { dateTime: iso, textContent: new Date(iso).toLocaleString() });
  async function loadSms() {
    if (!current || !canSms) return;
    const id = current.id;
    smsList.replaceChildren();
    smsNote.hidden = true;
    if (!(await servedPaths()).includes('/api/v1/sms/outbox')) {
      if (gone || current?.id !== id) return;
      smsNote.textContent = 'SMS are not available on this server.';
      smsNote.hidden = false;
      return;
    }
    try {
      const q = `customer_id=${encodeURIComponent(id)}&limit=50`;
      const [o, i] = await Promise.all([ctx.api.get(`/api/v1/sms/outbox?${q}`), ctx.api.get(`/api/v1/sms/inbox?${q}`)]);
      if (gone || current?.id !== id) return;
      const all = [...o.data, ...i.data].sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : b.id - a.id));
      smsList.append(...all.map((m) => el('li', { dataset: { smsId: String(m.id), status: m.status } },
        when(m.created_at),
        document.createTextNode(` ${m.direction === 'inbound' ? `from ${m.from}` : `to ${m.to}`} (${m.status}): `),
        el('span', { textContent: m.body ?? '' }))));
      smsNote.textContent = all.length ? '' : 'No SMS with this customer.';
      smsNote.hidden = all.length > 0;
    } catch (err) { fail(err); }
  }

  // The customer's calls (GET /api/v1/calls/customer/{id}).
  async function loadCalls() {
    if (!current || !canVoice) return;
    const id = current.id;
    callList.replaceChildren();
    callNote.hidden = true;
    if (!(await servedPaths()).some((p) => /^\/api\/v1\/calls\/customer\/\{[^}]+\}$/.test(p))) {
      if (gone || current?.id !== id) return;
      callNote.textContent = 'Calls are not available on this server.';
      callNote.hidden = false;
      return;
    }
    try {
      const r = await ctx.api.get(`/api/v1/calls/customer/${encodeURIComponent(id)}?limit=50`);
      if (gone || current?.id !== id) return;
      callList.append(...r.data.map((c) => el('li', { dataset: { callId: String(c.id), status: c.status } },
        when(c.started_at || c.created_at),
        document.createTextNode(` ${c.direction === 'inbound' ? `from ${c.from}` : `to ${c.to}`} (${c.status}`
          + `${c.duration_s != null ? `, ${c.duration_s} s` : ''})`))));
      callNote.textContent = r.data.length ? '' : 'No calls with this customer.';
      callNote.hidden = r.data.length > 0;
    } catch (err) { fail(err); }
  }

  async function showDetail(id) {
    clear();
    try {
      const c = await ctx.api.get(`${C}/${encodeURIComponent(id)}`);
      if (gone) return;
      current = c;
      dTitle.textContent = c.name || `Customer ${c.id}`;
      dFields.replaceChildren(
        ...dd('Id', String(c.id)), ...dd('Phone', c.phone ?? '—'), ...dd('E-mail', c.email ?? '—'),
        ...dd('WhatsApp id', c.wa_id ?? '—'), ...dd('Tags', (c.tags || []).join(', ') || '—'),
        ...dd('Notes', c.notes || '—'), ...dd('Attributes', JSON.stringify(c.attributes || {})),
        ...dd('Created', new Date(c.created_at).toLocaleString()));
      exportOut.hidden = true;
      exportLink.hidden = true;
      listView.hidden = true;
      form.hidden = true;
      detail.hidden = false;
      dTitle.focus();
      timelineCursor = null;
      await Promise.all([loadTimeline(false), loadSms(), loadCalls()]);
    } catch (err) { fail(err); }
  }

  back.addEventListener('click', () => {
    detail.hidden = true;
    current = null;
    listView.hidden = false;
    loadList(false);
  });
  edit.addEventListener('click', () => showForm(current));
  older.addEventListener('click', () => loadTimeline(true));

  exportButton.addEventListener('click', async () => {
    clear();
    try {
      const data = await ctx.api.get(`/api/v1/privacy/export?customer_id=${encodeURIComponent(current.id)}`);
      if (gone) return;
      const text = JSON.stringify(data, null, 2);
      exportOut.textContent = text;
      exportOut.hidden = false;
      if (exportUrl) URL.revokeObjectURL(exportUrl);
      exportUrl = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
      exportLink.href = exportUrl;
      exportLink.download = `customer-${current.id}.json`;
      exportLink.hidden = false;
      ctx.toast('Export ready');
    } catch (err) { fail(err); }
  });

  eraseButton.addEventListener('click', () => {
    confirmInput.value = '';
    confirmErase.disabled = true;
    confirmHelp.textContent = current.name
      ? `This erases everything held on this customer. Type their id (${current.id}) or name (${current.name}) to confirm.`
      : `This erases everything held on this customer. Type their id (${current.id}) to confirm.`;
    dialog.showModal();
    confirmInput.focus();
  });
  dialogForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!confirmed()) return;
    confirmErase.disabled = true;
    try {
      const r = await ctx.api.del(`${C}/${encodeURIComponent(current.id)}`);
      if (gone) return;
      dialog.close();
      const total = Object.values(r?.deleted ?? {}).reduce((a, b) => a + b, 0);
      ctx.toast(`Customer erased (${total} record${total === 1 ? '' : 's'})`);
      current = null;
      detail.hidden = true;
      listView.hidden = false;
      loadList(false);
    } catch (err) {
      dialog.close();
      fail(err);
    }
  });

  root.append(el('h2', { textContent: 'Customers' }), problem, listView, form, detail, dialog);
  loadList(false);

  return () => {
    gone = true;
    if (exportUrl) URL.revokeObjectURL(exportUrl);
    if (dialog.open) dialog.close();
  };
}
