// Types of @tandem-dev/client (hand-written; checked by test/types.test.mjs
// with tsc --noEmit --strict).

/** Every persisted event: `id` is its cursor (the SSE `id:`). */
export interface EventBase {
  id: string;
  eventIndex: number;
  sessionId: string;
  createdAt: number;
  type: string;
}

export interface ChatUserEvent extends EventBase {
  type: 'chat.user';
  userId: string;
  text: string;
  /** the inbox id the prompt's 202 answered */
  promptId?: string;
}

/** The SDK's SessionEvent: one ACP JSON-RPC envelope. */
export interface SessionEventEvent extends EventBase {
  type: 'session.event';
  connectionId: string;
  sender: 'client' | 'agent';
  payload: any;
}

export interface SessionStatusEvent extends EventBase {
  type: 'session.status';
  /** turn_started, turn_ended, owner_changed, sandbox_unhealthy, sandbox_recovered, session_restored, mode_changed… */
  status: string;
  detail?: any;
}

export interface PermissionOption {
  optionId: string;
  name?: string;
  kind?: string;
  [k: string]: unknown;
}

export interface PermissionRequestedEvent extends EventBase {
  type: 'permission.requested';
  requestId: string;
  connectionId?: string;
  toolCall?: any;
  options: PermissionOption[];
  requestedAt?: number;
  expiresAt?: number;
}

export interface PermissionResolution {
  requestId: string;
  optionId?: string;
  outcome: string;
  by: string;
  at: number;
  reason?: string;
  [k: string]: unknown;
}

export interface PermissionResolvedEvent extends EventBase, Omit<PermissionResolution, 'requestId'> {
  type: 'permission.resolved';
  requestId: string;
}

export type TandemEvent =
  | ChatUserEvent
  | SessionEventEvent
  | SessionStatusEvent
  | PermissionRequestedEvent
  | PermissionResolvedEvent;

export interface PresenceEvent {
  users: { userId: string; connections: number }[];
}

/** The stream could not resume the cursor exactly; it goes on from `oldest`. */
export interface ResetEvent {
  /** cursor_expired, cursor_unknown, history_rewound */
  reason: string;
  oldest: string | null;
}

/** What history() yields for a 410: the same as the stream's reset. */
export interface HistoryReset extends ResetEvent {
  type: 'reset';
}

export type ConnectionState = 'closed' | 'connecting' | 'live' | 'reconnecting';

export interface SessionEvents {
  'chat.user': ChatUserEvent;
  'session.event': SessionEventEvent;
  'session.status': SessionStatusEvent;
  'permission.requested': PermissionRequestedEvent;
  'permission.resolved': PermissionResolvedEvent;
  presence: PresenceEvent;
  reset: ResetEvent;
  /** every persisted event, in order */
  event: TandemEvent;
  /** the stream is open (with connect({catchUp}): and what came before it delivered) */
  open: void;
  /**
   * the EventSource gave up (it is reopened), the stream cannot be followed
   * (a 401, 403, 404…: the session is closed, state 'closed', when this
   * runs), or a listener threw
   */
  error: TandemError | unknown;
  state: ConnectionState;
}

export type Listener<T> = (event: T) => void;
export type Unsubscribe = () => void;

/** The constructor of a WHATWG EventSource (the browser's, or the eventsource package's). */
export interface EventSourceLike {
  readyState: number;
  onopen: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
  addEventListener(type: string, listener: (ev: { data: string; lastEventId: string }) => void): void;
  close(): void;
}
export type EventSourceConstructor = new (url: string, init?: any) => EventSourceLike;

export type FetchLike = (input: string, init?: any) => Promise<{
  ok: boolean;
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;

export interface TandemOptions {
  /** the node or load balancer, e.g. http://127.0.0.1:8080 (default: the page's origin) */
  baseUrl?: string;
  /** default: globalThis.fetch */
  fetch?: FetchLike | typeof fetch;
  /** default: globalThis.EventSource; in Node pass the eventsource package's */
  EventSource?: EventSourceConstructor | (new (url: string | URL, init?: any) => any);
  /** extra headers of every request (and, where the EventSource takes a fetch, of the stream) */
  headers?: Record<string, string> | (() => Record<string, string>);
  /** sent as X-User-Id (nodes with TANDEM_AUTH=none) */
  user?: string;
  /** a JWT sent as Authorization: Bearer (TANDEM_AUTH=jwt) */
  token?: string | (() => string);
  /** cookies on requests to another origin */
  withCredentials?: boolean;
  /** retries of prompts and reads: attempts (8), baseDelayMs (250), maxDelayMs (8000) */
  retry?: { attempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** the backoff of reopening a stream the EventSource gave up on */
  reconnect?: { baseDelayMs?: number; maxDelayMs?: number };
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  oldest?: string;
  resolution?: PermissionResolution;
  [k: string]: unknown;
}

export class TandemError extends Error {
  constructor(status: number, problem: Problem | null, extra?: { retryAfter?: number | string | null; cause?: unknown });
  /** HTTP status; 0: the node could not be reached */
  readonly status: number;
  /** the problem's type, e.g. urn:tandem:error:cursor_expired ('' without a problem body) */
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly problem: Problem | null;
  /** seconds, from Retry-After (0: none) */
  readonly retryAfter: number;
  /** the type's last part, e.g. cursor_expired */
  readonly code: string;
  /** worth retrying: network error, 429, 502, 503, 504 */
  readonly transient: boolean;
}

export interface Accepted {
  /** the prompt's inbox id; its chat.user carries it as promptId */
  id: string;
  sessionId: string;
}

export interface PromptInput {
  text: string;
  /** X-User-Id of this request (TANDEM_AUTH=none) */
  userId?: string;
  /** default: a new one per call, reused on its retries */
  idempotencyKey?: string;
  signal?: AbortSignal;
  /** called before each retry (after a network error, 429, 502, 503, 504) */
  onRetry?: (error: TandemError, attempt: number, delayMs: number) => void;
}

/** Options of the reads (and PUT) that retry transient errors. */
export interface ReadOptions {
  /** instead of the client's retry.attempts; 1: no retry */
  attempts?: number;
  signal?: AbortSignal;
}

export interface ConnectOptions {
  /** start after this cursor ('' : from the start) instead of the last event delivered */
  after?: string;
  /** deliver what is already there from the paging route first, then open the stream */
  catchUp?: boolean;
}

export interface SessionChange {
  mode?: string;
  model?: string;
  configOptions?: Record<string, string>;
}

export interface Me {
  auth: 'none' | 'jwt';
  userId?: string;
  role?: string;
  workspaces?: string[];
  expiresAt?: number;
  [k: string]: unknown;
}

export interface Page {
  items: TandemEvent[];
  nextCursor?: string;
}

export interface PageOptions {
  after?: string;
  limit?: number;
  types?: string[];
  signal?: AbortSignal;
}

export interface HistoryOptions extends PageOptions {
  /** on a 410: 'continue' (default) yields a reset item and goes on from the oldest event; 'throw' throws the TandemError */
  onReset?: 'continue' | 'throw';
}

export interface SessionRecord {
  id: string;
  agent: string;
  agentSessionId?: string;
  lastConnectionId?: string;
  createdAt: number;
  destroyedAt?: number;
  sandboxId?: string;
  [k: string]: unknown;
}

export interface WorkspaceInfo {
  workspaceId: string;
  sandboxId?: string;
  agent: string;
  createdAt?: number;
  owner: { node: string; epoch: number; since: number } | null;
  status: string;
  sessions: string[];
  permissionPolicy?: string;
  [k: string]: unknown;
}

interface Following {
  on<K extends keyof SessionEvents>(type: K, fn: Listener<SessionEvents[K]>): Unsubscribe;
  on(type: string, fn: Listener<any>): Unsubscribe;
  off(type: string, fn: Listener<any>): void;
  once<K extends keyof SessionEvents>(type: K, fn: Listener<SessionEvents[K]>): Unsubscribe;
  prompt(input: PromptInput | string): Promise<Accepted>;
  cancel(opts?: { userId?: string }): Promise<void>;
  answer(requestId: string, option: string | { optionId: string } | { outcome: 'cancelled' }, opts?: { userId?: string }): Promise<PermissionResolution>;
  page(opts?: PageOptions): Promise<Page>;
  history(opts?: HistoryOptions): AsyncGenerator<TandemEvent | HistoryReset, void, void>;
  /** PATCH the session: mode, model, config options (202) */
  configure(change: SessionChange, opts?: { userId?: string; signal?: AbortSignal }): Promise<Accepted>;
  /** reconnect now if the stream is waiting to (a browser's `online` event does it by itself) */
  retryNow(): void;
  /** the cursor of the last event delivered ('' before any) */
  readonly cursor: string;
  readonly state: ConnectionState;
}

export class Session implements Following {
  readonly id: string;
  readonly room: Workspace;
  on<K extends keyof SessionEvents>(type: K, fn: Listener<SessionEvents[K]>): Unsubscribe;
  on(type: string, fn: Listener<any>): Unsubscribe;
  off(type: string, fn: Listener<any>): void;
  once<K extends keyof SessionEvents>(type: K, fn: Listener<SessionEvents[K]>): Unsubscribe;
  /** follow the stream from the start, after a cursor, or (again) from the last event delivered */
  connect(opts?: ConnectOptions): this;
  close(): void;
  prompt(input: PromptInput | string): Promise<Accepted>;
  cancel(opts?: { userId?: string }): Promise<void>;
  answer(requestId: string, option: string | { optionId: string } | { outcome: 'cancelled' }, opts?: { userId?: string }): Promise<PermissionResolution>;
  configure(change: SessionChange, opts?: { userId?: string; signal?: AbortSignal }): Promise<Accepted>;
  retryNow(): void;
  info(opts?: ReadOptions): Promise<SessionRecord>;
  /** withdraw a prompt not yet dispatched (409 prompt_dispatched, 404 prompt_not_found, 403 someone else's) */
  withdraw(promptId: string, opts?: { userId?: string; signal?: AbortSignal }): Promise<null>;
  /** the caller is typing in this session (or stopped): presence, expiring a few seconds after the last call */
  typing(on?: boolean, opts?: { signal?: AbortSignal }): Promise<null>;
  /** destroy the session */
  destroy(opts?: { signal?: AbortSignal }): Promise<void>;
  page(opts?: PageOptions): Promise<Page>;
  history(opts?: HistoryOptions): AsyncGenerator<TandemEvent | HistoryReset, void, void>;
  readonly cursor: string;
  readonly state: ConnectionState;
}

/** The workspace stream's persisted event types. */
export const WORKSPACE_TYPES: readonly string[];

/** An event of the workspace stream: session.created, session.destroyed, session.status, prompt.queued, prompt.dispatched, prompt.withdrawn. */
export interface WorkspaceEvent {
  id: string;
  eventIndex: number;
  createdAt: number;
  type: string;
  sessionId: string;
  [field: string]: unknown;
}

/** The workspace's own stream: followed and resumed as a session's; no prompts. */
export class WorkspaceStream {
  readonly id: string;
  readonly room: Workspace;
  on(type: 'event', fn: Listener<WorkspaceEvent>): Unsubscribe;
  on(type: string, fn: Listener<any>): Unsubscribe;
  off(type: string, fn: Listener<any>): void;
  once(type: string, fn: Listener<any>): Unsubscribe;
  connect(opts?: ConnectOptions): this;
  close(): void;
  retryNow(): void;
  page(opts?: PageOptions): Promise<Page>;
  history(opts?: HistoryOptions): AsyncGenerator<TandemEvent | HistoryReset, void, void>;
  readonly cursor: string;
  readonly state: ConnectionState;
}

export class Workspace implements Following {
  readonly id: string;
  readonly tandem: Tandem;
  /** the default session ("default") */
  readonly default: Session;
  session(id: string): Session;
  /** PUT: create or update (no body: the node's sandbox and agent) */
  ensure(
    body?: { sandbox?: { baseUrl: string; token?: string; sandboxId?: string }; agent?: string; agents?: string[]; permissionPolicy?: 'ask' | 'allow' | 'reject' },
    opts?: ReadOptions,
  ): Promise<WorkspaceInfo | null>;
  info(opts?: ReadOptions): Promise<WorkspaceInfo>;
  presence(opts?: ReadOptions): Promise<PresenceEvent>;
  /** the workspace's own stream (the same handle every time) */
  events(): WorkspaceStream;
  /** one page of the workspace's sessions */
  listSessions(opts?: ReadOptions & { cursor?: string; limit?: number }): Promise<{ items: SessionRecord[]; nextCursor?: string }>;
  createSession(opts?: { id?: string; agent?: string; mode?: string; model?: string; sessionInit?: { cwd?: string; mcpServers?: unknown[] } }): Promise<Session>;
  on<K extends keyof SessionEvents>(type: K, fn: Listener<SessionEvents[K]>): Unsubscribe;
  on(type: string, fn: Listener<any>): Unsubscribe;
  off(type: string, fn: Listener<any>): void;
  once<K extends keyof SessionEvents>(type: K, fn: Listener<SessionEvents[K]>): Unsubscribe;
  /** follow the default session */
  connect(opts?: ConnectOptions): this;
  /** close every session's stream of this workspace */
  close(): void;
  prompt(input: PromptInput | string): Promise<Accepted>;
  cancel(opts?: { userId?: string }): Promise<void>;
  answer(requestId: string, option: string | { optionId: string } | { outcome: 'cancelled' }, opts?: { userId?: string }): Promise<PermissionResolution>;
  configure(change: SessionChange, opts?: { userId?: string; signal?: AbortSignal }): Promise<Accepted>;
  retryNow(): void;
  page(opts?: PageOptions): Promise<Page>;
  history(opts?: HistoryOptions): AsyncGenerator<TandemEvent | HistoryReset, void, void>;
  readonly cursor: string;
  readonly state: ConnectionState;
}

export class Tandem {
  constructor(opts?: TandemOptions);
  readonly baseUrl: string;
  /** X-User-Id of every request ('' : none); may be changed, e.g. when the person picks another name */
  user: string;
  /** the handle of a workspace (the same one for the same id) */
  workspace(id: string): Workspace;
  /** one JSON request; throws TandemError */
  request<T = any>(method: string, path: string, opts?: { body?: unknown; headers?: Record<string, string>; query?: Record<string, string | number | undefined>; signal?: AbortSignal }): Promise<T>;
  /** GET /v1/auth/me */
  me(opts?: ReadOptions): Promise<Me>;
  /** POST /v1/auth/cookie: the node keeps the JWT in an HttpOnly cookie (a browser's EventSource sends it) */
  signIn(token: string, opts?: { signal?: AbortSignal }): Promise<Me>;
  /** DELETE /v1/auth/cookie */
  signOut(opts?: { signal?: AbortSignal }): Promise<void>;
}

/** a new Idempotency-Key */
export function newKey(): string;

export default Tandem;
