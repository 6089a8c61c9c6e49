// The URL's history entries, written when the page can spare the CPU.
//
// Every write (pushState or replaceState, even of the same URL) costs the
// browser 20-27 ms of CPU (the navigation's bookkeeping, its history
// database; measured in bench/RESULTS.md, viewer7), on the two cores that
// the workers computing a new range's bigram need. So writes wait in a
// queue (a replacement folds into the entry it replaces) until `flush()`
// (the bigram is exact) or a timer. A Back or Forward that comes while
// entries wait is repaired: the page returns to its last written entry,
// writes the waiting ones, then takes the step the user asked for, as if
// they had been written at once. Each entry's state holds its index
// (`{i}`), so the page knows where a traversal landed.

/** The page's session history: `record` a state's URL, `flush` what waits. */
export class UrlHistory {
  /** `show(url)`: show the state of a URL the browser went back or forward to. */
  constructor({ show }) {
    this.show = show;
    const s = history.state;
    /** The index of the last entry written (the browser's current one unless a traversal is under way). */
    this.index = s && Number.isInteger(s.i) ? s.i : 0;
    /**
     * This document's first entry: the ones before it belong to other
     * documents (another site, or this page before a reload), and a Back
     * onto them leaves the page, where nothing can be repaired.
     */
    this.first = this.index;
    /** The writes that wait, in order: {push, url}. */
    this.queue = [];
    this.timer = null;
    /** While a traversal is repaired: what to do at its next popstate. */
    this.repair = null;
    // For tests: the writes and the repairs made.
    this.stats = { writes: 0, repairs: 0 };
    window.addEventListener("popstate", (e) => this.popstate(e));
  }

  /** The URL the browser shows once everything waiting is written. */
  latest() {
    return this.queue.length ? this.queue[this.queue.length - 1].url : location.pathname + location.search;
  }

  /** Whether a new entry waits to be written. */
  get waiting() {
    return this.queue.some((op) => op.push);
  }

  /**
   * Record `url`: a new entry when `push`, else the current entry's new URL.
   * It is written by `flush()`, or `delay` ms after the last record at most.
   * A new entry over an entry that is this document's first is written at
   * once: a Back before it is written would leave the page.
   */
  record(url, push, delay) {
    if (url === this.latest()) return;
    const last = this.queue[this.queue.length - 1];
    if (push) this.queue.push({ push: true, url });
    else if (last) last.url = url;
    else this.queue.push({ push: false, url });
    clearTimeout(this.timer);
    if (push && this.index === this.first) this.flush();
    else this.timer = setTimeout(() => this.flush(), delay);
  }

  /** Write what waits, in order. */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.repair) return; // the repair writes the queue itself
    const queue = this.queue;
    this.queue = [];
    for (const { push, url } of queue) {
      if (push) this.index++;
      this.stats.writes++;
      if (push) history.pushState({ i: this.index }, "", url);
      else history.replaceState({ i: this.index }, "", url);
    }
  }

  popstate(event) {
    const to = event.state && Number.isInteger(event.state.i) ? event.state.i : null;
    if (this.repair) {
      const step = this.repair;
      this.repair = null;
      step(to);
      return;
    }
    if (!this.queue.length || to === null || to === this.index) {
      // Nothing waits (or the entry is not one of the page's): an ordinary step.
      this.queue = [];
      clearTimeout(this.timer);
      if (to !== null) this.index = to;
      this.show(location.pathname + location.search);
      return;
    }
    // The browser stepped from the last written entry (index) to `to`; the
    // user stepped from the newest state, `pushes` entries further on.
    this.stats.repairs++;
    const written = this.index;
    const pushes = this.queue.filter((op) => op.push).length;
    const newest = written + pushes;
    const step = to - written;
    // Back lands as far behind the newest; Forward from the newest finds
    // nothing (a new entry drops those ahead of it) unless none was new.
    const target = step < 0 ? newest + step : pushes ? newest : to;
    this.repair = (at) => {
      if (at !== written) {
        // Another step came meanwhile: give up what waits, show where the browser is.
        this.queue = [];
        if (at !== null) this.index = at;
        this.show(location.pathname + location.search);
        return;
      }
      this.flush();
      if (target !== this.index) {
        this.repair = (end) => {
          if (end !== null) this.index = end;
          this.show(location.pathname + location.search);
        };
        history.go(target - this.index);
      }
      // Else the page already shows the newest state, now written.
    };
    history.go(written - to);
  }
}
