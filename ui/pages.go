package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// permissions are what the signed-in user may do, by namespace, as the API
// reports them (AccessService.MyPermissions): the pages show a control
// only to those who hold its permission.
type permissions struct {
	global []string
	byNS   map[string][]string
}

// may reports whether the user holds permission p on namespace ns.
func (p permissions) may(ns, perm string) bool {
	return contains(p.global, perm) || contains(p.byNS[ns], perm)
}

// permissionsOf asks the API who the caller is and what they may do.
func (u *UI) permissionsOf(ctx context.Context, c caller) (permissions, *wharfv1.WhoAmIResponse, error) {
	ctx = withCaller(ctx, c)
	who, err := u.svc.access.WhoAmI(ctx, connect.NewRequest(&wharfv1.WhoAmIRequest{}))
	if err != nil {
		return permissions{}, nil, err
	}
	if who.Msg.GetUser() == "" {
		return permissions{}, nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("the session is no longer valid"))
	}
	mine, err := u.svc.access.MyPermissions(ctx, connect.NewRequest(&wharfv1.MyPermissionsRequest{}))
	if err != nil {
		return permissions{}, nil, err
	}
	p := permissions{global: mine.Msg.GetGlobal(), byNS: map[string][]string{}}
	for _, ns := range mine.Msg.GetNamespaces() {
		p.byNS[ns.GetNamespace()] = ns.GetPermissions()
	}
	return p, who.Msg, nil
}

// ctx is the context of the request's API calls.
func (rq *request) ctx() context.Context { return withCaller(rq.r.Context(), rq.c) }

// --- sign in and out ---

type loginView struct {
	Next, Username, Error string
}

func (u *UI) loginForm(rq *request) (string, error) {
	q := rq.r.URL.Query()
	rq.v.Title, rq.v.Nav = "Sign in", "login"
	rq.v.Data = loginView{Next: safeNext(q.Get("next"))}
	return "login", nil
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	rq, _ := u.begin(w, r)
	if rq == nil {
		return
	}
	if err := checkCSRF(r); err != nil {
		u.renderError(rq, err)
		return
	}
	user, password := strings.TrimSpace(r.PostFormValue("username")), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	if user == "" || password == "" {
		u.loginFailed(rq, user, next, "enter your username and password")
		return
	}
	if err := u.signIn(w, r, user, password); err != nil {
		msg := "wrong username or password"
		if code := connect.CodeOf(err); code != connect.CodeUnauthenticated && code != connect.CodePermissionDenied {
			msg = connect.CodeOf(err).String() + ": " + errMessage(err)
		}
		u.loginFailed(rq, user, next, msg)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) loginFailed(rq *request, user, next, msg string) {
	rq.v.Title, rq.v.Nav = "Sign in", "login"
	rq.v.Data = loginView{Next: next, Username: user, Error: msg}
	u.render(rq, http.StatusUnauthorized, "login")
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if err := checkCSRF(r); err != nil {
		rq, _ := u.begin(w, r)
		if rq != nil {
			u.renderError(rq, err)
		}
		return
	}
	u.signOut(w, r)
	http.Redirect(w, r, "/ui/?done=signed+out", http.StatusSeeOther)
}

func errMessage(err error) string {
	if ce, ok := err.(*connect.Error); ok {
		return ce.Message()
	}
	return err.Error()
}

// --- execution environments (repositories) ---

type repositoriesView struct {
	Query, Field, Namespace, Sort string
	Descending                    bool
	Repositories                  []*wharfv1.Repository
	Next                          string // the next page's URL, if any
	Filtered                      bool
	SignInToSee                   bool
}

var repositoryOrders = map[string]wharfv1.RepositoryOrder{
	"name":    wharfv1.RepositoryOrder_REPOSITORY_ORDER_NAME,
	"updated": wharfv1.RepositoryOrder_REPOSITORY_ORDER_UPDATED,
	"pushed":  wharfv1.RepositoryOrder_REPOSITORY_ORDER_PUSHED,
	"created": wharfv1.RepositoryOrder_REPOSITORY_ORDER_CREATED,
}

// repositoriesPage is the size of a page of the listing.
const repositoriesPage = 25

func (u *UI) repositories(rq *request) (string, error) {
	q := rq.r.URL.Query()
	v := repositoriesView{
		Query: strings.TrimSpace(q.Get("q")), Field: q.Get("in"), Namespace: strings.TrimSpace(q.Get("namespace")),
		Sort: q.Get("sort"), Descending: q.Get("desc") == "1",
	}
	if _, ok := repositoryOrders[v.Sort]; !ok {
		v.Sort = "name"
	}
	if v.Field != "description" {
		v.Field = "name"
	}
	v.Filtered = v.Query != "" || v.Namespace != ""
	req := &wharfv1.ListRepositoriesRequest{
		Namespace: v.Namespace, Order: repositoryOrders[v.Sort], Descending: v.Descending,
		PageSize: repositoriesPage, PageToken: q.Get("page"),
	}
	if v.Field == "description" {
		req.DescriptionContains = v.Query
	} else {
		req.NameContains = v.Query
	}
	rq.v.Title, rq.v.Nav = "Execution environments", "repositories"
	res, err := u.svc.repos.ListRepositories(rq.ctx(), connect.NewRequest(req))
	switch {
	case err != nil && rq.v.User == "" && connect.CodeOf(err) == connect.CodeUnauthenticated:
		v.SignInToSee = true
	case err != nil:
		return "", err
	default:
		v.Repositories = res.Msg.GetRepositories()
		if tok := res.Msg.GetNextPageToken(); tok != "" {
			next := rq.r.URL.Query()
			next.Set("page", tok)
			v.Next = "/ui/?" + next.Encode()
		}
	}
	rq.v.Data = v
	return "repositories", nil
}

// --- one repository ---

type repositoryView struct {
	Tab        string
	Repository *wharfv1.Repository
	Readme     string
	Owners     []*wharfv1.RoleGrant
	Storage    *wharfv1.RepositoryStorage
	Signed     bool
	Origin     string
	Images     []*wharfv1.Image
	NextImages string
	Confirm    *wharfv1.Image // the image a deletion asks to confirm
	Edit       bool
	// What the user may do here.
	MayEdit, MayTag, MayDelete bool
}

func (u *UI) repository(rq *request) (string, error) {
	name := rq.r.PathValue("name")
	q := rq.r.URL.Query()
	res, err := u.svc.repos.GetRepository(rq.ctx(), connect.NewRequest(&wharfv1.GetRepositoryRequest{Name: name}))
	if err != nil {
		return "", err
	}
	repo := res.Msg.GetRepository()
	ns := repo.GetNamespace()
	v := repositoryView{
		Tab: q.Get("tab"), Repository: repo, Readme: res.Msg.GetReadme(), Owners: res.Msg.GetOwners(),
		Storage: res.Msg.GetStorage(), Signed: res.Msg.GetSigned(), Origin: res.Msg.GetOrigin(),
		MayEdit:   rq.perm.may(ns, "edit_metadata"),
		MayTag:    rq.perm.may(ns, "change_tags"),
		MayDelete: rq.perm.may(ns, "delete_repository"),
	}
	v.Edit = v.MayEdit && q.Get("edit") == "1"
	if v.Tab != "images" {
		v.Tab = "detail"
	}
	if v.Tab == "images" {
		if err := u.loadImages(rq, &v, q); err != nil {
			return "", err
		}
	}
	rq.v.Title, rq.v.Nav = name, "repositories"
	rq.v.Data = v
	return "repository", nil
}

// loadImages lists a page of the repository's images, and the image a
// deletion asks to confirm.
func (u *UI) loadImages(rq *request, v *repositoryView, q url.Values) error {
	name := v.Repository.GetName()
	res, err := u.svc.images.ListImages(rq.ctx(), connect.NewRequest(&wharfv1.ListImagesRequest{
		Repository: name, HideChildren: true, PageSize: 50, PageToken: q.Get("page"),
	}))
	if err != nil {
		return err
	}
	v.Images = res.Msg.GetImages()
	if tok := res.Msg.GetNextPageToken(); tok != "" {
		v.NextImages = "/ui/repositories/" + name + "?tab=images&page=" + url.QueryEscape(tok)
	}
	if d := q.Get("delete"); d != "" && v.MayDelete {
		img, err := u.svc.images.GetImage(rq.ctx(), connect.NewRequest(&wharfv1.GetImageRequest{Repository: name, Reference: d}))
		if err != nil {
			return err
		}
		v.Confirm = img.Msg.GetImage()
	}
	return nil
}

// --- actions: forms that change the registry ---

// action runs a form's change through the API and returns the browser to
// the page it came from.
func (u *UI) action(w http.ResponseWriter, r *http.Request) {
	rq, ok := u.begin(w, r)
	if !ok {
		return
	}
	if err := checkCSRF(r); err != nil {
		u.renderError(rq, err)
		return
	}
	name := r.PostFormValue("repository")
	back := "/ui/repositories/" + name
	var err error
	var done string
	switch r.PathValue("action") {
	case "readme":
		readme, description := r.PostFormValue("readme"), r.PostFormValue("description")
		_, err = u.svc.repos.SetRepositoryInfo(rq.ctx(), connect.NewRequest(&wharfv1.SetRepositoryInfoRequest{
			Name: name, Readme: &readme, Description: &description,
		}))
		done = "saved the description and readme"
	case "tag":
		tag := strings.TrimSpace(r.PostFormValue("tag"))
		_, err = u.svc.images.TagImage(rq.ctx(), connect.NewRequest(&wharfv1.TagImageRequest{
			Repository: name, Tag: tag, Reference: r.PostFormValue("reference"),
		}))
		back, done = back+"?tab=images", "tagged "+tag
	case "untag":
		tag := r.PostFormValue("tag")
		_, err = u.svc.images.UntagImage(rq.ctx(), connect.NewRequest(&wharfv1.UntagImageRequest{Repository: name, Tag: tag}))
		back, done = back+"?tab=images", "removed tag "+tag
	case "delete-image":
		d := r.PostFormValue("reference")
		_, err = u.svc.images.DeleteImage(rq.ctx(), connect.NewRequest(&wharfv1.DeleteImageRequest{Repository: name, Reference: d}))
		back, done = back+"?tab=images", "deleted "+shortDigest(d)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		u.renderError(rq, err)
		return
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	http.Redirect(w, r, back+sep+"done="+url.QueryEscape(done), http.StatusSeeOther)
}
