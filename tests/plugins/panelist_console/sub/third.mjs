// panelist test plugin: a module in a subdirectory, served as .mjs.
export default function mount(root) {
  root.textContent = 'third';
}
