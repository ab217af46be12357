// The example plugin's console panel (ABI 1.2; docs/PLUGINS.md, "Console
// panels").  The console imports this module from /plugins/example/panel.js
// and calls mount(root, ctx) when a user chooses "Example notes".  Plain
// DOM, text set as text, no inline handlers or scripts (the console's CSP
// is default-src 'self'): a pattern to copy.

export default function mount(root, ctx) {
  let gone = false;	// the user navigated away: late answers are dropped

  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props);
    node.append(...children);
    return node;
  };

  const heading = el('h2', { textContent: 'Example notes' });
  const greeting = el('p', { textContent: 'Loading the greeting…' });
  greeting.dataset.testid = 'example-hello';

  const text = el('textarea', { id: 'example-note-text', name: 'text', rows: 4, maxLength: 2000,
    required: true });
  const label = el('label', { htmlFor: text.id, textContent: 'Note text' });
  const save = el('button', { type: 'submit', textContent: 'Save note' });
  const form = el('form', {}, label, text, save);
  const problem = el('p', { hidden: true });
  problem.setAttribute('role', 'alert');
  const saved = el('section', {});
  saved.setAttribute('aria-live', 'polite');
  const note = el('p', {});
  note.dataset.testid = 'example-note';
  saved.append(note);

  root.append(heading, greeting, form, problem, saved);

  const fail = (err) => {
    if (gone) return;
    // The API's error envelope: field errors name what to fix.
    const fields = (err.errors || []).map((e) => `${e.field}: ${e.message}`).join('; ');
    problem.textContent = fields ? `${err.message} (${fields})` : err.message;
    problem.hidden = false;
  };

  ctx.api.get('/api/v1/example/hello')
    .then((r) => { if (!gone) greeting.textContent = r.message; })
    .catch(fail);

  if (!ctx.can('example.write')) {
    // Reading is what the navigation entry needs; saving needs more.
    text.disabled = true;
    save.disabled = true;
    form.append(el('p', { textContent: 'You may read notes but not save them (example.write).' }));
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    problem.hidden = true;
    save.disabled = true;
    try {
      const created = await ctx.api.post('/api/v1/example/notes', { text: text.value });
      // Read it back by id: what the server stored, not what was typed.
      const stored = await ctx.api.get(`/api/v1/example/notes/${encodeURIComponent(created.id)}`);
      if (gone) return;
      note.textContent = `#${stored.id}: ${stored.text}`;
      text.value = '';
      ctx.toast('Note saved');
    } catch (err) {
      fail(err);
    } finally {
      if (!gone) save.disabled = false;
    }
  });

  return () => { gone = true; };
}
