// Plays MP4 files in headless Chromium and reports what the <video> element saw.
//
// stdin:  {"chromium": "/usr/bin/chromium", "page": "http://127.0.0.1:PORT/",
//          "videos": ["http://127.0.0.1:PORT/a.mp4", ...], "playback_rate": 4, "timeout_ms": 20000}
// stdout: {"browser": "<version>", "h264": "<canPlayType answer>", "results": [{...}, ...]}
//
// Only playwright-core is used, with the system's Chromium: no browser is downloaded.
import { chromium } from 'playwright-core';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// Runs inside the page: loads one video, plays it to the end, reports every figure the test
// checks. Listeners are attached before `src` is set so that no event can be missed.
async function playInPage({ src, playbackRate, timeoutMs }) {
  const video = document.createElement('video');
  video.muted = true; // muted playback needs no user gesture
  video.preload = 'auto';
  document.body.appendChild(video);
  const events = [];
  for (const name of ['loadedmetadata', 'loadeddata', 'canplay', 'playing', 'ended', 'error']) {
    video.addEventListener(name, () => events.push(name));
  }
  const settle = (names) =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), timeoutMs);
      for (const name of names) {
        video.addEventListener(name, () => { clearTimeout(timer); resolve(name); }, { once: true });
      }
    });
  const loaded = settle(['loadeddata', 'error']);
  const finished = settle(['ended', 'error']);
  video.src = src;
  const loadOutcome = await loaded;
  const atLoad = {
    outcome: loadOutcome,
    ready_state: video.readyState,
    duration: video.duration,
    video_width: video.videoWidth,
    video_height: video.videoHeight,
  };
  let playError = null;
  let endOutcome = loadOutcome;
  if (loadOutcome === 'loadeddata') {
    video.playbackRate = playbackRate;
    // A one-frame video can end before play() settles, which rejects it with an AbortError:
    // wait for the end first, then collect how play() settled.
    const played = video.play().then(() => null, (error) => `${error.name}: ${error.message}`);
    endOutcome = await finished;
    playError = await played;
  }
  const quality = video.getVideoPlaybackQuality();
  return {
    src,
    at_load: atLoad,
    end_outcome: endOutcome,
    ended: video.ended,
    current_time: video.currentTime,
    error: video.error ? { code: video.error.code, message: video.error.message } : null,
    play_error: playError,
    decoded_frames: quality.totalVideoFrames,
    dropped_frames: quality.droppedVideoFrames,
    events,
  };
}

const input = await readStdin();
const browser = await chromium.launch({
  executablePath: input.chromium,
  // A root container has no user namespaces for Chromium's sandbox.
  args: ['--headless=new', '--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--mute-audio'],
  timeout: input.timeout_ms,
});
try {
  const page = await browser.newPage();
  await page.goto(input.page);
  const h264 = await page.evaluate(() =>
    document.createElement('video').canPlayType('video/mp4; codecs="avc1.42E01E"'));
  const results = [];
  for (const src of input.videos) {
    results.push(await page.evaluate(playInPage, {
      src,
      playbackRate: input.playback_rate,
      timeoutMs: input.timeout_ms,
    }));
  }
  process.stdout.write(JSON.stringify({ browser: browser.version(), h264, results }));
} finally {
  await browser.close();
}
