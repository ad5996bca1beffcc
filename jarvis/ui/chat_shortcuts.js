// The chat's keyboard shortcuts, listened for on the whole page while the Chat view is shown and sent
// to the server by name. Only these keys leave the browser: typing itself is never sent key by key.
//   Ctrl+K (Cmd+K)              search        Ctrl+Shift+O (Cmd+Shift+O)  new conversation
//   Esc (no dialog or menu open) escape       Up in the empty chat input  edit-last
export default {
  props: {
    inputSelector: { type: String, required: true },
  },
  mounted() {
    this.handler = (event) => {
      if (!(event instanceof KeyboardEvent) || event.isComposing) return;
      const name = this.shortcut(event);
      if (!name) return;
      event.preventDefault();
      this.$emit("shortcut", name);
    };
    document.addEventListener("keydown", this.handler);
  },
  unmounted() {
    document.removeEventListener("keydown", this.handler);
  },
  methods: {
    shortcut(event) {
      const command = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (command && !event.altKey && !event.shiftKey && key === "k") return "search";
      if (command && !event.altKey && event.shiftKey && key === "o") return "new";
      if (event.key === "Escape" && !document.querySelector(".q-dialog, .q-menu")) return "escape";
      const plain = !command && !event.altKey && !event.shiftKey;
      if (plain && event.key === "ArrowUp" && event.target.matches?.(this.inputSelector) && !event.target.value) {
        return "edit-last";
      }
      return null;
    },
  },
};
