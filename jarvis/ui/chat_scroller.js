// The chat's message list: it follows the newest message unless the user scrolled up to read.
// Only the browser knows when new content has been laid out, so the following happens here: a
// ResizeObserver sees the list grow (a new bubble, a streaming answer, a narrower window) and, while
// following, scrolls to the end after the layout, never before it. Scrolling up stops following and
// shows "Jump to latest"; scrolling back to the end (or the button) starts it again.
const NEAR_END_PX = 48;

export default {
  template: `
    <div class="jarvis-scroller">
      <div ref="box" class="jarvis-scroller-box" @scroll.passive="onScroll">
        <div ref="content"><slot></slot></div>
      </div>
      <button v-show="!following" type="button" class="jarvis-jump" data-testid="jump-to-latest"
              :title="jumpText" @click="follow">
        <i class="q-icon notranslate material-icons" aria-hidden="true">arrow_downward</i>
        <span>{{ jumpText }}</span>
      </button>
    </div>`,
  props: {
    jumpText: { type: String, default: "Jump to latest" },
  },
  data() {
    return { following: true };
  },
  created() {
    this.lastTop = 0;
  },
  mounted() {
    this.observer = new ResizeObserver(() => {
      if (this.following) this.toEnd();
    });
    this.observer.observe(this.$refs.content);
    this.observer.observe(this.$refs.box);
  },
  unmounted() {
    this.observer.disconnect();
    this.stopRevealing();
  },
  methods: {
    distanceToEnd() {
      const box = this.$refs.box;
      return box.scrollHeight - box.scrollTop - box.clientHeight;
    },
    // Only a move up stops the following: the list may grow between a scroll to the end and its scroll
    // event, so a distance to the end alone would read as "scrolled away" while an answer streams.
    onScroll() {
      const top = this.$refs.box.scrollTop;
      if (this.distanceToEnd() <= NEAR_END_PX) this.following = true;
      else if (top < this.lastTop - 1) this.following = false;
      this.lastTop = top;
    },
    toEnd() {
      const box = this.$refs.box;
      box.scrollTop = box.scrollHeight;
    },
    // Follow the newest message again (after a send, on "Jump to latest", when a conversation opens).
    follow() {
      this.stopRevealing();
      this.following = true;
      this.toEnd();
    },
    // Scroll a message (data-message-id) to the middle and mark it for a moment; it may not be there
    // yet when the server asks, so try for a while.
    reveal(messageId, attempts = 40) {
      this.following = false;
      this.stopRevealing();
      const target = Array.from(this.$refs.box.querySelectorAll("[data-message-id]")).find(
        (element) => element.dataset.messageId === messageId,
      );
      if (!target) {
        if (attempts > 0) this.revealTimer = setTimeout(() => this.reveal(messageId, attempts - 1), 50);
        return;
      }
      target.scrollIntoView({ block: "center" });
      this.following = this.distanceToEnd() <= NEAR_END_PX;
      target.classList.add("jarvis-found");
      this.marked = target;
      this.revealTimer = setTimeout(() => this.stopRevealing(), 2000);
    },
    stopRevealing() {
      clearTimeout(this.revealTimer);
      this.marked?.classList.remove("jarvis-found");
      this.marked = null;
    },
  },
};
