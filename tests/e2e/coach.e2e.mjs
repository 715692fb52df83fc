// End-to-end: Portcullis and the Finance Coach on loopback, driven in Debian's headless
// Chromium through playwright-core (no browser download).
//
//   node tests/e2e/coach.e2e.mjs --portcullis target/debug/portcullis --coach target/debug/finance-coach
//
// A user logs in through the Universal Login form, lands on the dashboard with their data,
// calls the API from the page, is refused the admin page, and logs out of both; an admin
// sees the admin page. Screenshots (desktop and phone) go to the artifacts directory.

import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);
const root = resolve(new URL("../..", import.meta.url).pathname);
const portcullis = resolve(args.portcullis ?? join(root, "target/debug/portcullis"));
const coach = resolve(args.coach ?? join(root, "target/debug/finance-coach"));
const artifacts = resolve(args.artifacts ?? join(root, "target/e2e-artifacts"));
const browserPath = args.chromium ?? "/usr/bin/chromium";

const USER = { email: "user@coach.example", password: "Demo-user-Password-2", name: "Uma User" };
const ADMIN = { email: "admin@coach.example", password: "Demo-admin-Password-1", name: "Ada Admin" };

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
    server.on("error", fail);
  });
}

async function waitHealthy(url, child, log) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited\n${readFileSync(log, "utf8").slice(-3000)}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${url} did not become healthy`);
}

function start(cmd, argv, env, log) {
  const out = openSync(log, "w");
  // Only what the servers need: stray PORTCULLIS_* or COACH_* variables stay out.
  const base = { PATH: process.env.PATH, HOME: process.env.HOME ?? tmpdir(), RUST_LOG: "info" };
  return spawn(cmd, argv, { env: { ...base, ...env }, stdio: ["ignore", out, out] });
}

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push(["PASS", name]);
    console.log(`PASS ${name}`);
  } catch (error) {
    results.push(["FAIL", name]);
    console.log(`FAIL ${name}: ${error.stack ?? error}`);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const tmp = mkdtempSync(join(tmpdir(), "portcullis-e2e-"));
mkdirSync(artifacts, { recursive: true });
const children = [];
let browser;
try {
  const pPort = await freePort();
  const cPort = await freePort();
  const issuer = `http://127.0.0.1:${pPort}/`;
  const base = `http://127.0.0.1:${cPort}`;
  const tenant = readFileSync(join(root, "examples/finance-coach/tenant.yaml"), "utf8").replaceAll("127.0.0.1:3000", `127.0.0.1:${cPort}`);
  writeFileSync(join(tmp, "tenant.yaml"), tenant);
  const common = ["--database", `sqlite://${tmp}/portcullis.db`, "--data-dir", tmp, "--issuer", issuer];
  execFileSync(portcullis, ["apply", ...common, join(tmp, "tenant.yaml")], {
    stdio: "pipe",
    env: { PATH: process.env.PATH, HOME: process.env.HOME ?? tmpdir() },
  });
  const pLog = join(tmp, "portcullis.log");
  children.push(start(portcullis, ["serve", "--listen", `127.0.0.1:${pPort}`, ...common], { PORTCULLIS_LOG_FORMAT: "json" }, pLog));
  await waitHealthy(`${issuer}health`, children[0], pLog);
  const cLog = join(tmp, "coach.log");
  children.push(
    start(coach, [], {
      COACH_ISSUER: issuer,
      COACH_BASE_URL: base,
      COACH_LISTEN: `127.0.0.1:${cPort}`,
      COACH_DATABASE: `sqlite://${tmp}/coach.db`,
    }, cLog),
  );
  await waitHealthy(`${base}/health`, children[1], cLog);

  browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-component-update"],
  });

  const problems = [];
  const watch = (page) => {
    // Script errors and CSP refusals count; HTTP statuses are checked where they matter
    // (the refused admin page is a 403 on purpose, browsers ask for a favicon).
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(String(e)));
  };

  async function logIn(page, who, shots) {
    await page.goto(`${base}/`);
    await page.click("#login");
    await page.waitForURL(`${issuer}u/login**`);
    expect(await page.isVisible("input[name=password]"), "the Universal Login form is shown");
    if (shots) {
      await page.screenshot({ path: join(artifacts, "login.png") });
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: join(artifacts, "login-phone.png"), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });
    }
    await page.fill("input[name=username]", who.email);
    await page.fill("input[name=password]", who.password);
    await Promise.all([page.waitForURL(`${base}/dashboard`), page.click("button[type=submit]")]);
  }

  await check("a user logs in, sees their own data, and calls the API from the page", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    watch(page);
    await logIn(page, USER, true);
    const greeting = await page.textContent("#greeting");
    expect(greeting.includes(USER.name), `greeting: ${greeting}`);
    const body = await page.textContent("main");
    for (const text of ["Everyday checking", "Spending against budget", "Dining is", "Recent transactions"]) {
      expect(body.includes(text), `the dashboard shows ${text}`);
    }
    expect(await page.isVisible("svg.chart"), "the chart is rendered");
    await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(artifacts, "dashboard-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.click("#refresh");
    await page.waitForSelector("#api-result[data-ok=true]");
    const api = await page.textContent("#api-result");
    expect(api.includes("The API confirms") && api.includes("Dining"), `API result: ${api}`);

    // The plain user is refused the admin page.
    const admin = await page.goto(`${base}/admin`);
    expect(admin.status() === 403, `admin page status ${admin.status()}`);
    expect((await page.textContent("main")).includes("Administrators only"), "the refusal says why");

    // Logging out ends both sessions: the next login shows the form again.
    await page.goto(`${base}/dashboard`);
    await Promise.all([page.waitForURL(`${base}/`), page.click("#logout")]);
    await page.goto(`${base}/dashboard`);
    await page.waitForURL(`${issuer}u/login**`);
    expect(await page.isVisible("input[name=password]"), "after logout, Portcullis asks for the password again");
    expect(problems.length === 0, `browser errors: ${problems.join(" | ")}`);
    await context.close();
  });

  await check("an admin sees the admin page with totals from the API", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    watch(page);
    await logIn(page, ADMIN, false);
    const admin = await page.goto(`${base}/admin`);
    expect(admin.status() === 200, `admin page status ${admin.status()}`);
    const users = await page.textContent("#users");
    expect(Number(users) >= 1, `users with data: ${users}`);
    await page.screenshot({ path: join(artifacts, "admin.png"), fullPage: true });
    expect(problems.length === 0, `browser errors: ${problems.join(" | ")}`);
    await context.close();
  });

  await check("the API refuses a request without a token with WWW-Authenticate", async () => {
    const r = await fetch(`${base}/api/transactions`);
    expect(r.status === 401, `status ${r.status}`);
    expect((r.headers.get("www-authenticate") ?? "").startsWith("Bearer"), "a Bearer challenge");
    const bad = await fetch(`${base}/api/transactions`, { headers: { authorization: "Bearer forged.token.value" } });
    expect(bad.status === 401 && (bad.headers.get("www-authenticate") ?? "").includes("invalid_token"), `forged: ${bad.status}`);
  });

  if (results.some(([outcome]) => outcome === "FAIL")) {
    for (const log of ["portcullis.log", "coach.log"]) {
      console.log(`--- last lines of ${log} ---\n${readFileSync(join(tmp, log), "utf8").split("\n").slice(-30).join("\n")}`);
    }
  }
} catch (error) {
  results.push(["FAIL", "setup"]);
  console.log(`FAIL setup: ${error.stack ?? error}`);
} finally {
  if (browser) await browser.close();
  for (const child of children) child.kill("SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
}

const failed = results.filter(([o]) => o === "FAIL").length;
console.log(`${results.length - failed} passed, ${failed} failed; screenshots in ${artifacts}`);
process.exit(failed || results.length === 0 ? 1 : 0);
