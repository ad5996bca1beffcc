// Per-core CPU load as one element: a 64-core machine updates one prop per tick, not 128 elements.
export default {
  template: `
    <div class="jarvis-cores">
      <div v-for="(core, index) in cores" :key="index" class="jarvis-core">
        <div class="jarvis-core-label">Core {{ index }}: {{ core[0] === null ? 'n/a' : Math.round(core[0]) + '%' }}</div>
        <div class="jarvis-core-track">
          <div class="jarvis-core-fill" :style="{ width: (core[0] || 0) + '%', background: 'var(--q-' + core[1] + ')' }"></div>
        </div>
      </div>
    </div>`,
  props: {
    cores: { type: Array, default: () => [] }, // [[percent, quasar colour name], ...]
  },
};
