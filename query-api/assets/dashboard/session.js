// Who is signed in, which project the pages show, and what their role there
// lets them do. The API decides (it answers 403); the dashboard only hides
// what would be refused and says why when such a page is opened anyway.

import { projectFromCookie, useProject } from './api.js'

export const ROLES = ['viewer', 'developer', 'admin']

const RANK = { viewer: 1, developer: 2, admin: 3 }

export const session = {
  /** `GET /v1/auth/me`: {user_id, email, global_admin, roles: [{project_id, role}], created_at}. */
  user: null,
  /** The selected project's id. */
  project: null
}

/** The projects the user has a role in, sorted. */
export function projects () {
  const ids = (session.user?.roles || []).map((role) => role.project_id)
  if (session.project && !ids.includes(session.project)) ids.push(session.project)
  return [...new Set(ids)].sort()
}

/** The user's role in `project` (global admins are admins everywhere); null for none. */
export function roleIn (project = session.project) {
  if (!session.user) return null
  if (session.user.global_admin) return 'admin'
  return session.user.roles?.find((role) => role.project_id === project)?.role || null
}

/** The role as a person reads it: `viewer`, or `global admin`. */
export function roleLabel (project = session.project) {
  if (session.user?.global_admin) return 'global admin'
  return roleIn(project) || 'no role'
}

/** True when the role in the selected project is at least `needed`. */
export function can (needed) {
  const role = roleIn()
  return Boolean(role) && RANK[role] >= RANK[needed]
}

/** Signs `user` in and picks the project: the last one used when still theirs, else their first. */
export function signIn (user) {
  session.user = user
  const remembered = projectFromCookie()
  const own = (user.roles || []).map((role) => role.project_id).sort()
  const project = (remembered && (user.global_admin || own.includes(remembered))) ? remembered : own[0] || null
  choose(project)
}

export function signOut () {
  session.user = null
  session.project = null
}

/** Selects `project` for every page and request. */
export function choose (project) {
  session.project = project || null
  useProject(session.project)
}
