// Shows whether this window's connection to the app is up. Only the browser can know that the
// connection dropped (the server cannot tell it), so the state is read from NiceGUI's socket.
export default {
  template: `
    <span :class="['jarvis-live', connected ? 'is-live' : 'is-offline']" role="status" :title="connected ? liveTitle : offlineTitle">
      <span class="jarvis-live-dot"></span>
      <span class="jarvis-live-text">{{ connected ? liveText : offlineText }}</span>
    </span>`,
  props: {
    liveText: { type: String, default: "Live" },
    offlineText: { type: String, default: "Offline" },
    liveTitle: { type: String, default: "Connected to J.A.R.V.I.S." },
    offlineTitle: { type: String, default: "Connection lost, reconnecting..." },
    handshakeFlag: { type: String, required: true },  // the name of NiceGUI's own flag, from jarvis/framework.py
  },
  data() {
    return { connected: false };
  },
  mounted() {
    this.check();
    this.timer = setInterval(this.check, 500);
  },
  unmounted() {
    clearInterval(this.timer);
  },
  methods: {
    check() {
      this.connected = Boolean(window.socket && window.socket.connected && window[this.handshakeFlag]);
    },
  },
};
