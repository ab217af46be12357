// panelist test plugin: the module of panels "first" and "second".
export default function mount(root) {
  root.textContent = 'first';
}
