// The demo portal: plain DOM code on top of fastify-session-gateway/client. Everything
// protocol-shaped (handshake, cursors, reconnect and resume) is the client's job.
import { ConnectionError, GatewayClient, randomId } from '/client/index.js'

const $ = id => document.getElementById(id)
const STATE_LABELS = { connecting: 'Connecting…', open: 'Connected', reconnecting: 'Reconnecting…', closed: 'Disconnected' }

let client
let session
let stopSession = () => {}
let failedSend // { text, idempotencyKey } of a send that did not go through, to retry with the same key
let listTimer

// ── signing in ────────────────────────────────────────────────────────────────

async function signIn (token) {
  $('login-error').hidden = true
  $('login-submit').disabled = true
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/gateway`
  const candidate = new GatewayClient({ url, token, reconnect: { initialDelayMs: 300, maxDelayMs: 5000 } })
  candidate.onState(showState)
  showState(candidate.state)
  try {
    await candidate.ready
  } catch (err) {
    $('login-submit').disabled = false
    $('login-error').textContent = err.code === 'REFUSED' ? 'That token was not accepted.' : `Cannot reach the gateway: ${err.message}`
    $('login-error').hidden = false
    sessionStorage.removeItem('portal-token')
    return
  }
  client = candidate
  sessionStorage.setItem('portal-token', token)
  $('login').hidden = true
  $('app').hidden = false
  $('sign-out').hidden = false
  client.onState(state => { if (state === 'open') refreshList() })
  client.onEvent(frame => { if (frame.event === 'sessions.changed') scheduleListRefresh() })
  await client.sessions.subscribe()
  await refreshList()
  const first = document.querySelector('#sessions button')
  if (first !== null) await select(first.dataset.key)
}

function showState (state) {
  const indicator = $('connection')
  indicator.dataset.state = state
  indicator.querySelector('.label').textContent = STATE_LABELS[state]
}

// ── the session list ──────────────────────────────────────────────────────────

function scheduleListRefresh () {
  clearTimeout(listTimer)
  listTimer = setTimeout(refreshList, 150)
}

async function refreshList () {
  let page
  try {
    page = await client.sessions.list({ limit: 100 })
  } catch {
    return // offline: the list refreshes when the connection is back
  }
  const list = $('sessions')
  list.replaceChildren(...page.sessions.map(row => {
    const item = document.createElement('li')
    const button = document.createElement('button')
    button.dataset.key = row.key
    button.setAttribute('aria-current', String(session?.key === row.key))
    button.innerHTML = '<div class="session-row"><span class="session-name"></span><span class="session-time"></span></div><div class="session-preview"></div>'
    button.querySelector('.session-name').textContent = row.label ?? shortKey(row.key)
    button.querySelector('.session-time').textContent = ago(row.updatedAt)
    button.querySelector('.session-time').title = new Date(row.updatedAt).toLocaleString()
    button.querySelector('.session-preview').textContent = row.lastMessagePreview ?? 'No messages yet'
    button.addEventListener('click', () => select(row.key))
    item.append(button)
    return item
  }))
  $('sessions-empty').hidden = page.sessions.length > 0
}

async function newSession () {
  const { key } = await client.sessions.create({ key: `portal-${randomId().slice(0, 8)}` })
  await select(key)
  await refreshList()
  $('input').focus()
}

// ── one session ───────────────────────────────────────────────────────────────

let selecting = 0
async function select (key) {
  const mine = ++selecting
  const opened = await client.open(key)
  // Clicked again meanwhile: the later choice wins.
  if (mine !== selecting) {
    if (opened !== session) opened.close()
    return
  }
  stopSession()
  if (session !== opened) session?.close()
  session = opened
  stopSession = session.on(update => {
    if (update.type === 'message') {
      $('message-list').append(messageElement(update.message))
      removeStreaming()
    } else if (update.type === 'delta') {
      showStreaming(update.runId, update.text)
    } else if (update.type === 'run.end') {
      removeStreaming()
    } else {
      renderSession() // reset, older rows, closed
    }
    updateControls()
    scrollDown()
  })
  for (const button of document.querySelectorAll('#sessions button')) button.setAttribute('aria-current', String(button.dataset.key === key))
  renderSession()
  scrollDown()
}

function renderSession () {
  $('session-title').textContent = shortKey(session.key)
  $('session-key').textContent = session.key
  $('message-list').replaceChildren(...session.messages.map(messageElement))
  removeStreaming()
  if (session.running !== undefined) showStreaming(session.running.runId, session.running.text)
  $('load-older').hidden = session.before === undefined
  $('no-messages').hidden = session.messages.length > 0 || session.running !== undefined
  $('no-messages').textContent = 'No messages yet. Say hello below.'
  updateControls()
}

function messageElement (message) {
  const item = document.createElement('li')
  item.className = `message ${message.role}`
  item.dataset.id = message.id
  const who = document.createElement('span')
  who.className = 'who'
  who.textContent = message.role === 'user' ? 'You' : message.role === 'assistant' ? 'Assistant' : 'Tool'
  const text = document.createElement('span')
  text.className = 'text'
  text.textContent = message.content.filter(part => part.type === 'text').map(part => part.text).join('')
  item.append(who, text)
  if (message.stopReason === 'aborted' || message.stopReason === 'error') {
    const tag = document.createElement('span')
    tag.className = 'tag'
    // An abort by a person says "Stopped"; one by the gateway (a restart, a reset) says why.
    tag.textContent = message.stopReason === 'aborted' ? `■ ${message.errorMessage ?? 'Stopped'}` : `⚠ ${message.errorMessage ?? 'Failed'}`
    item.classList.add(message.stopReason)
    item.append(document.createElement('br'), tag)
  }
  return item
}

function showStreaming (runId, text) {
  let bubble = document.querySelector('.message.streaming')
  if (bubble === null || bubble.dataset.runId !== runId) {
    bubble?.remove()
    bubble = messageElement({ role: 'assistant', content: [{ type: 'text', text: '' }], id: '' })
    bubble.removeAttribute('data-id')
    bubble.classList.add('streaming')
    bubble.dataset.runId = runId
    $('message-list').append(bubble)
  }
  bubble.querySelector('.text').textContent = text
  $('no-messages').hidden = true
}

function removeStreaming () {
  if (session?.running === undefined) document.querySelector('.message.streaming')?.remove()
}

function updateControls () {
  const usable = session !== undefined && !session.closed
  $('input').disabled = !usable
  $('send').disabled = !usable
  $('stop').hidden = session?.running === undefined
}

function scrollDown () {
  const box = $('messages')
  box.scrollTop = box.scrollHeight
}

// ── sending ───────────────────────────────────────────────────────────────────

async function send (text, idempotencyKey) {
  $('send-error').hidden = true
  try {
    await session.send(text, idempotencyKey === undefined ? {} : { idempotencyKey })
    failedSend = undefined
  } catch (err) {
    // Kept with its key: "Retry" cannot start the turn twice, even if the first did arrive.
    failedSend = { text, idempotencyKey: err instanceof ConnectionError ? err.idempotencyKey : undefined }
    $('send-error').textContent = `Not sent: ${err.message}. `
    const retry = document.createElement('button')
    retry.type = 'button'
    retry.className = 'link'
    retry.textContent = 'Retry'
    retry.addEventListener('click', () => send(failedSend.text, failedSend.idempotencyKey))
    $('send-error').append(retry)
    $('send-error').hidden = false
  }
}

// ── little helpers ────────────────────────────────────────────────────────────

function shortKey (key) {
  return key.replace(/^agent:[^:]+:/, '')
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
function ago (ms) {
  const minutes = Math.round((ms - Date.now()) / 60000)
  if (minutes > -1) return 'just now'
  if (minutes > -60) return relative.format(minutes, 'minute')
  if (minutes > -24 * 60) return relative.format(Math.round(minutes / 60), 'hour')
  return new Date(ms).toLocaleDateString()
}

// ── wiring ────────────────────────────────────────────────────────────────────

$('login-form').addEventListener('submit', event => {
  event.preventDefault()
  signIn($('token').value.trim())
})
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem('portal-token')
  client?.close()
  location.reload()
})
$('new-session').addEventListener('click', () => newSession())
$('load-older').addEventListener('click', () => session?.loadOlder())
$('stop').addEventListener('click', () => session?.abort())
$('composer').addEventListener('submit', event => {
  event.preventDefault()
  const text = $('input').value.trim()
  if (text === '' || session === undefined) return
  $('input').value = ''
  send(text)
})
$('input').addEventListener('keydown', event => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault()
    $('composer').requestSubmit()
  }
})
// A browser knows when the network is back before a backed-off retry would.
window.addEventListener('online', () => { if (client?.state === 'reconnecting') client.reconnectNow() })

const saved = sessionStorage.getItem('portal-token')
if (saved !== null) signIn(saved)
